#!/usr/bin/env bash
# The attention-guided pruning table of docs/pruning.md: the zoo senet and vit
# pruned to 80 / 65 / 50% of their MACs with --criterion l1, random and
# attention, before fine-tuning (batch-norm statistics re-estimated from 16
# batches where the model has batch norms: the senet; the vit has none), top-1
# on the 10,000 Fashion-MNIST test images. One run at a time, 1 thread.
#   bash bench/attention_table.sh            (needs a build: scripts/build.sh)
#   SENET=... VIT=... CLI=/prefix/bin/compress bash bench/attention_table.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${CLI:-$root/build/bin/compress}"
senet="${SENET:-/work/models/senet.pt}"
vit="${VIT:-/work/models/vit.pt}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "| model, MACs kept | l1 | random | attention |"
echo "|---|---|---|---|"
for model in senet vit; do
  path=$senet bn="--recalibrate-bn 16"
  [ "$model" = vit ] && path=$vit bn=""
  for macs in 0.8 0.65 0.5; do
    row="| $model, $macs"
    for c in l1 random attention; do
      # shellcheck disable=SC2086
      "$cli" prune "$path" -o "$work/p.pt" --input-shape 1,1,28,28 --target-macs "$macs" --criterion "$c" \
          --data fashion-mnist $bn --threads 1 --report "$work/r.json" -q
      kept=$(jq '[.. | objects | select(has("macs_after")) | .macs_after / .macs_before][0]' "$work/r.json")
      acc=$(jq '.accuracy_after' "$work/r.json")
      row="$row | $(printf '%.2f%% (MACs %.1f%%)' "$(echo "$acc * 100" | bc -l)" "$(echo "$kept * 100" | bc -l)")"
    done
    echo "$row |"
  done
done
