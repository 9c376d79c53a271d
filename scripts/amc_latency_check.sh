#!/usr/bin/env bash
# Quiet rerun of docs/amc.md "Latency budget" (one thread; 305 s at load 10,
# less on a quiet machine): an amc search (--fill-budget) whose latency
# budget is the predicted latency of the MACs-only policy below (the
# 50%-MACs search's best widths on the zoo resnet); then the result, that
# policy and the unpruned model are timed side by side, and both policies'
# test top-1 printed. Pass: result measured within 5% of the MACs-only
# policy's measured time and a higher test top-1.
#   scripts/amc_latency_check.sh [RESNET.pt] [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-/work/main/out/resnet-baseline.pt}"
out="${2:-$root/out/amc-latency}"
mkdir -p "$out"
cat > "$out/macs_policy.json" <<'JSON'
{"conv1": 0.265625, "layer1.0.conv1": 0.140625, "layer2.0.conv1": 0.4140625, "layer2.0.conv2": 0.3046875,
 "layer3.0.conv1": 0.59765625, "layer3.0.conv2": 0.43359375}
JSON
lscpu | grep "Model name"
uptime
"$root/build/bin/compress" amc "$model" --data fashion-mnist --match-latency "$out/macs_policy.json" --fill-budget \
  --episodes 200 --warmup 50 --seed 1 --val-size 1000 --threads 1 -o "$out/latency_policy.json" --report "$out/report.json" |
  grep -v '^episode'
uptime
