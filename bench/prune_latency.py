#!/usr/bin/python3
"""FP32 latency of models before and after pruning, side by side in one
process (runs interleaved, median of each), one thread:
   /usr/bin/python3 bench/prune_latency.py out/sweep resnet18 mobilenet_v2 [--batch 32] [--reps 7]
Reads NAME.pt and NAME.pruned.pt (bench/prune_sweep.sh writes both)."""
import statistics, sys, time
import torch

args = [a for a in sys.argv[1:]]
batch, reps = 32, 7
if "--batch" in args:
    i = args.index("--batch"); batch = int(args[i + 1]); del args[i:i + 2]
if "--reps" in args:
    i = args.index("--reps"); reps = int(args[i + 1]); del args[i:i + 2]
folder, names = args[0], args[1:]
torch.set_num_threads(1)
print(f"| model | batch | threads | original (ms) | pruned (ms) | speed-up |")
print("|---|---|---|---|---|---|")
for n in names:
    a = torch.jit.load(f"{folder}/{n}.pt").eval()
    b = torch.jit.load(f"{folder}/{n}.pruned.pt").eval()
    s = 299 if n == "inception_v3" else 224
    x = torch.randn(batch, 3, s, s)
    ta, tb = [], []
    with torch.no_grad():
        a(x); b(x)  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter(); a(x); ta.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); b(x); tb.append(time.perf_counter() - t0)
    ma, mb = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
    print(f"| {n} | {batch} | 1 | {ma:.1f} | {mb:.1f} | {ma / mb:.2f}x |", flush=True)
