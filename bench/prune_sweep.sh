#!/usr/bin/env bash
# Coverage sweep of structured pruning over torchvision classification models:
# trace each one (random weights), prune it to half its MACs, check that the
# pruned model runs and keeps its output shape, and print a Markdown table.
#   bash bench/prune_sweep.sh [NAME...]     (needs a build: scripts/build.sh)
#   CLI=/prefix/bin/compress bash bench/prune_sweep.sh   (another build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${CLI:-$root/build/bin/compress}"
work="${WORK:-$root/out/sweep}"
target="${TARGET:-0.5}"
mkdir -p "$work"
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(resnet18 mobilenet_v2 mobilenet_v3_small efficientnet_b0 alexnet vgg11 resnet50
  resnext50_32x4d wide_resnet50_2 densenet121 squeezenet1_0 shufflenet_v2_x0_5 mnasnet0_5 googlenet inception_v3
  regnet_y_400mf convnext_tiny swin_t mobilenet_v3_large efficientnet_v2_s vit_b_16)
echo "| model | groups (prunable / all) | MACs before | MACs after | kept | parameters kept | prune time | runs, same output shape |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${names[@]}"; do
  [ -f "$work/$n.pt" ] || /usr/bin/python3 "$root/tests/fixtures/trace_torchvision.py" "$work" "$n" >/dev/null 2>&1
  s=224; [ "$n" = inception_v3 ] && s=299
  groups=$("$cli" inspect "$work/$n.pt" --input-shape 1,3,$s,$s --groups | tail -1)
  start=$(date +%s.%N)
  if ! "$cli" prune "$work/$n.pt" -o "$work/$n.pruned.pt" --input-shape 1,3,$s,$s --target-macs "$target" \
       --report "$work/$n.prune.json" -q 2> "$work/$n.prune.err"; then
    echo "| $n | $groups | - | - | - | - | - | no: $(head -c 200 "$work/$n.prune.err") |"
    continue
  fi
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  runs=$("$cli" compare "$work/$n.pt" "$work/$n.pruned.pt" --input-shape 1,3,$s,$s --json >/dev/null 2>&1 && echo yes || echo no)
  /usr/bin/python3 - "$work/$n.prune.json" "$n" "$groups" "$secs" "$runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["result"]
g = sys.argv[3].split(" groups, ")
groups = f"{g[1].split()[0]} / {g[0]}"
print(f"| {sys.argv[2]} | {groups} | {r['macs_before']/1e9:.3f} G | {r['macs_after']/1e9:.3f} G | "
      f"{100*r['macs_after']/r['macs_before']:.1f}% | {100*r['params_after']/r['params_before']:.1f}% | "
      f"{float(sys.argv[4]):.1f} s | {sys.argv[5]} |")
PY
done
