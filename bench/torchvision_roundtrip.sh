#!/usr/bin/env bash
# Round-trip sweep over torchvision classification models: trace each one,
# `compress convert` it, compare outputs (one thread, so LibTorch's own
# threaded reductions cannot differ between runs), and print params and MACs.
#   bash bench/torchvision_roundtrip.sh [NAME...]     (needs a build: scripts/build.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${CLI:-$root/build/bin/compress}"
work="${WORK:-$root/out/sweep}"
mkdir -p "$work"
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(resnet18 mobilenet_v2 mobilenet_v3_small efficientnet_b0 alexnet vgg11 resnet50 resnext50_32x4d wide_resnet50_2 densenet121 squeezenet1_0
  shufflenet_v2_x0_5 mnasnet0_5 googlenet inception_v3 regnet_y_400mf convnext_tiny swin_t mobilenet_v3_large
  efficientnet_v2_s vit_b_16)
echo "| model | max abs diff after round trip (eval) | (train, batch 2) | parameters | MACs | ops carried through |"
echo "|---|---|---|---|---|---|"
for n in "${names[@]}"; do
  [ -f "$work/$n.pt" ] || /usr/bin/python3 "$root/tests/fixtures/trace_torchvision.py" "$work" "$n" >/dev/null 2>&1
  s=224; [ "$n" = inception_v3 ] && s=299
  "$cli" convert "$work/$n.pt" -o "$work/$n.roundtrip.pt" -q
  diff=$(OMP_NUM_THREADS=1 "$cli" compare "$work/$n.pt" "$work/$n.roundtrip.pt" --input-shape 1,3,$s,$s --json |
         /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["max_abs_diff"])')
  # Training mode: a model traced in training mode (the trace bakes the mode
  # in) against its round trip switched to train(), same dropout seed.
  [ -f "$work/$n.train.pt" ] || /usr/bin/python3 "$root/tests/fixtures/trace_torchvision.py" "$work" --train "$n" >/dev/null 2>&1
  "$cli" convert "$work/$n.train.pt" -o "$work/$n.train.roundtrip.pt" -q
  train=$(OMP_NUM_THREADS=1 "$cli" compare "$work/$n.train.pt" "$work/$n.train.roundtrip.pt" --input-shape 2,3,$s,$s --train --json |
         /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["max_abs_diff"])')
  "$cli" inspect "$work/$n.pt" --input-shape 1,3,$s,$s --json > "$work/$n.json"
  /usr/bin/python3 - "$work/$n.json" "$n" "$diff" "$train" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
carried = ", ".join(sorted(j["carried_ops"])) or "-"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {j['total_params']:,} | {j['total_macs']/1e9:.3f} G | {carried} |")
PY
done
