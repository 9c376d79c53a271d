#!/usr/bin/env bash
# Training throughput of the cnn zoo model on Fashion-MNIST: 1 process x 1
# thread, 1 process x 2 threads, 2 processes x 1 thread (--nproc 2), and the
# 2-process run without overlapping the gradient all-reduce with backward.
# The configurations take turns, ROUNDS times, so that each sees the same
# machine; samples/s = steps x batch / train_seconds (the training steps only),
# and samples per CPU-second of one process (train_cpu_seconds of rank 0).
# usage: bench/dist_throughput.sh [ROUNDS] [SAMPLES]   (docs/distributed.md)
set -euo pipefail
rounds=${1:-3}
samples=${2:-12800}
cli=${COMPRESS:-build/bin/compress}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(train --arch cnn --data fashion-mnist --limit "$samples" --epochs 1 --batch-size 128 --quiet --json)
declare -A configs=(
  ["1 process x 1 thread"]="--threads 1"
  ["1 process x 2 threads"]="--threads 2"
  ["2 processes x 1 thread"]="--nproc 2 --threads 1 --bucket-mb 0.25"
  ["2 processes x 1 thread, no overlap"]="--nproc 2 --threads 1 --bucket-mb 0.25 --no-overlap"
)
order=("1 process x 1 thread" "1 process x 2 threads" "2 processes x 1 thread" "2 processes x 1 thread, no overlap")
for ((r = 1; r <= rounds; ++r)); do
  for name in "${order[@]}"; do
    # shellcheck disable=SC2086
    "$cli" "${common[@]}" ${configs[$name]} -o "$out/m.pt" > "$out/r.json"
    # samples/s of the job; samples per CPU-second of one process (rank 0,
    # all its threads: the cost per sample, whatever else the machine runs)
    /usr/bin/python3 -c "
import json; j = json.load(open('$out/r.json')); n = j['steps'] * 128
print('round $r | $name | %.0f samples/s | %.0f samples per CPU-second per process | load %s'
      % (n / j['train_seconds'], n / j['world_size'] / j['train_cpu_seconds'], open('/proc/loadavg').read().split()[0]))"
  done
done
