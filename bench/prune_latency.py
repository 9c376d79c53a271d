#!/usr/bin/python3
"""FP32 latency of models before and after pruning, side by side in one
process (the original and every pruned variant run in turn, repeated; median
of each), one thread:
   /usr/bin/python3 bench/prune_latency.py out/sweep resnet18 mobilenet_v2 [--batch 32] [--reps 7]
       [--variants pruned,latency] [--cpu]
Reads NAME.pt and NAME.VARIANT.pt for each variant (default: NAME.pruned.pt,
which bench/prune_sweep.sh writes). --cpu times each call in the thread's CPU
time instead of wall time: on a shared machine a descheduled call then does
not count the other processes' turns (one thread computes on the calling
thread)."""
import os, statistics, sys, time
import torch
from torch_threads import set_threads  # LibTorch's and OpenBLAS's threads

args = [a for a in sys.argv[1:]]
batch, reps, variants, cpu = 32, 7, ["pruned"], False
if "--batch" in args:
    i = args.index("--batch"); batch = int(args[i + 1]); del args[i:i + 2]
if "--reps" in args:
    i = args.index("--reps"); reps = int(args[i + 1]); del args[i:i + 2]
if "--variants" in args:
    i = args.index("--variants"); variants = args[i + 1].split(","); del args[i:i + 2]
if "--cpu" in args:
    args.remove("--cpu"); cpu = True
clock = time.thread_time if cpu else time.perf_counter
folder, names = args[0], args[1:]
set_threads(1)
print(f"load average {os.getloadavg()[0]:.1f}; {'thread CPU time' if cpu else 'wall time'}")
print(f"| model | variant | batch | threads | original (ms) | pruned (ms) | speed-up |")
print("|---|---|---|---|---|---|---|")
for n in names:
    models = [torch.jit.load(f"{folder}/{n}.pt").eval()]
    models += [torch.jit.load(f"{folder}/{n}.{v}.pt").eval() for v in variants]
    s = 299 if n == "inception_v3" else 224
    x = torch.randn(batch, 3, s, s)
    times = [[] for _ in models]
    with torch.no_grad():
        for m in models:
            m(x); m(x)  # warm-up: the profiling executor optimises over the first calls
        for _ in range(reps):
            for m, t in zip(models, times):
                t0 = clock(); m(x); t.append(clock() - t0)
    med = [statistics.median(t) * 1e3 for t in times]
    for v, mv in zip(variants, med[1:]):
        print(f"| {n} | {v} | {batch} | 1 | {med[0]:.1f} | {mv:.1f} | {med[0] / mv:.2f}x |", flush=True)
print(f"load average {os.getloadavg()[0]:.1f}")
