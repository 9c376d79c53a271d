#!/usr/bin/env bash
# Top-1 of the zoo resnet and mobilenetv2 pruned to 50% of their MACs and
# fine-tuned 2 epochs (docs/pruning.md, "Accuracy: the zoo resnet and
# mobilenetv2"), one `compress prune` run at a time; prints a Markdown table
# row per run (full 10,000-image test set). EPOCHS=N fine-tunes N epochs
# instead (the zoo recipes train resnet and mobilenetv2 for 8).
#   bash bench/prune_zoo_accuracy.sh                           (the default runs below)
#   RUNS="resnet:bn:--distill mobilenetv2:l1:" bash bench/prune_zoo_accuracy.sh
#   THREADS=2 CLI=/prefix/bin/compress RESNET=r.pt MOBILENETV2=m.pt bash bench/prune_zoo_accuracy.sh
# A run is MODEL:CRITERION:EXTRA (EXTRA: further prune options, commas for spaces).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${CLI:-$root/build/bin/compress}"
threads="${THREADS:-1}"
epochs="${EPOCHS:-2}"
declare -A model=([resnet]="${RESNET:-/work/main/out/resnet-baseline.pt}"
                  [mobilenetv2]="${MOBILENETV2:-/work/main/out/mobilenetv2-baseline.pt}")
runs="${RUNS:-resnet:l1:--iterative-steps,2 resnet:l1:--iterative-steps,2,--seed,1 resnet:random:--iterative-steps,2 mobilenetv2:l1:--distill,--lr,0.05}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "$(date -u '+%F %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $threads thread(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | criterion | options | MACs kept | top-1 after $epochs epochs | change | seconds |"
echo "|---|---|---|---|---|---|---|"
for run in $runs; do
  IFS=: read -r m criterion extra <<< "$run"
  extra="${extra//,/ }"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$cli" prune "${model[$m]}" -o "$work/p.pt" --input-shape 1,1,28,28 --target-macs 0.5 --criterion "$criterion" \
    --data fashion-mnist --recalibrate-bn 16 --finetune-epochs "$epochs" --threads "$threads" --quiet --report "$work/r.json" $extra
  seconds=$(( $(date +%s) - start ))
  jq -r --arg m "$m" --arg c "$criterion" --arg x "$extra" --arg s "$seconds" \
    '"| \($m) | \($c) | \($x) | \(100 * .result.macs_after / .result.macs_before * 10 | round / 10)% | \(100 * .accuracy_after * 100 | round / 100)% | \(100 * (.accuracy_after - .accuracy_before) * 100 | round / 100) | \($s) |"' \
    "$work/r.json"
done
