#!/usr/bin/python3
"""Dynamic INT8 side by side in one process: LibTorch FP32 (the traced or
zoo TorchScript model), PyTorch's own dynamic quantization
(torch.ao.quantization.quantize_dynamic on nn.Linear / nn.LSTM / nn.GRU,
traced) and compress's (compress quantize --dynamic), on the same inputs.

    /usr/bin/python3 bench/dynamic_vs_torch.py --cli build/bin/compress \\
        --ops build/src/ops/libcompress_ops.so --work out/dynbench \\
        [--zoo lstm=out/seq/lstm.pt,gru=out/seq/gru.pt,transformer=out/seq/transformer.pt] \\
        [--batches 1,32] [--threads 1] [--reps 30]

Models:
  * two traced text classifiers (random weights, seeded; nothing downloaded):
    `encoder2`: Embedding(10000, 256) -> nn.TransformerEncoder (2 layers,
    8 heads, feed-forward 1024, batch first) -> mean -> Linear(256, 10), and
    `lstm_cls`: Embedding(10000, 256) -> nn.LSTM(256, 512) -> last step ->
    Linear(512, 10); tokens [batch, 64];
  * the zoo's Fashion-MNIST sequence models (--zoo NAME=FILE.pt, trained by
    `compress train --arch lstm|gru|transformer`): rebuilt here as nn.Modules
    with the saved weights so quantize_dynamic can take them; input
    [batch, 1, 28, 28].
Agreement: each INT8 model's output SQNR against FP32 on the timing input.
Latency: per (threads, batch), the three run interleaved, a warm-up call each,
then --rounds rounds of --reps calls each; the median call of every round,
then the median over rounds, in CPU time of the calling thread (the ratios)
and in wall time. Printed as a markdown table with the ratios."""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
from torch.ao.quantization import quantize_dynamic
from torch_threads import set_threads  # LibTorch's and OpenBLAS's threads


def sqnr_db(ref, out):
    noise = (ref - out).pow(2).sum()
    return float(10 * torch.log10(ref.pow(2).sum() / noise)) if noise > 0 else float("inf")


class Encoder2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10000, 256)
        layer = torch.nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = torch.nn.Linear(256, 10)

    def forward(self, tokens):
        return self.fc(self.enc(self.emb(tokens)).mean(1))


class LstmClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10000, 256)
        self.rnn = torch.nn.LSTM(256, 512, batch_first=True)
        self.fc = torch.nn.Linear(512, 10)

    def forward(self, tokens):
        y, _ = self.rnn(self.emb(tokens))
        return self.fc(y[:, -1])


# ---- the zoo's sequence models as nn.Modules (same parameter names as the
# TorchScript the zoo builds, src/models/zoo.cpp)
class ZooRecurrent(torch.nn.Module):
    def __init__(self, lstm, hidden):
        super().__init__()
        self.rnn = (torch.nn.LSTM if lstm else torch.nn.GRU)(28, hidden, batch_first=True)
        self.dropout = torch.nn.Dropout(0.1)
        self.fc = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        y, _ = self.rnn(x.reshape(x.shape[0], 28, 28))
        return self.fc(self.dropout(y[:, 27]))


class ZooLayer(torch.nn.Module):
    def __init__(self, dim, mlp):
        super().__init__()
        # nn.MultiheadAttention itself (not a subclass), so that the trace
        # holds its leaf, which compress imports and whose projections convert.
        self.self_attn = torch.nn.MultiheadAttention(dim, 4, batch_first=True)
        self.norm1 = torch.nn.LayerNorm(dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, mlp), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                       torch.nn.Linear(mlp, dim))
        self.norm2 = torch.nn.LayerNorm(dim)

    def forward(self, x):
        x = self.norm1(x + self.self_attn(x, x, x, need_weights=False)[0])
        return self.norm2(x + self.mlp(x))


class ZooTransformer(torch.nn.Module):
    def __init__(self, dim=64, mlp=128):
        super().__init__()
        self.embed = torch.nn.Linear(28, dim)
        self.pos_embedding = torch.nn.Parameter(torch.zeros(1, 28, dim))
        self.encoder = torch.nn.Sequential(ZooLayer(dim, mlp), ZooLayer(dim, mlp))
        self.head = torch.nn.Linear(dim, 10)

    def forward(self, x):
        x = self.embed(x.reshape(x.shape[0], 28, 28)) + self.pos_embedding
        return self.head(self.encoder(x).mean(1))


def zoo_module(name, path):
    saved = torch.jit.load(path)
    state = {k: v for k, v in saved.state_dict().items()}
    if name in ("lstm", "gru"):
        m = ZooRecurrent(name == "lstm", state["rnn.weight_hh_l0"].shape[1])
    else:
        m = ZooTransformer(state["embed.weight"].shape[0], state["encoder.0.mlp.0.weight"].shape[0])
    m.load_state_dict(state)
    return m.eval()


def torch_dynamic(module):
    """PyTorch's dynamic INT8 of nn.Linear / LSTM / GRU. Its quantized linears
    have no weight tensor, which the eval fast path of nn.TransformerEncoderLayer
    reads (AttributeError in torch 1.13): those layers take the standard path,
    as PyTorch's own quantized transformers do."""
    q = quantize_dynamic(module, {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU}, dtype=torch.qint8)
    for m in q.modules():
        if isinstance(m, torch.nn.TransformerEncoderLayer):
            m.activation_relu_or_gelu = False
    return q


def timed(fn, x, reps):
    """Median wall time and median CPU time of the calling thread per call.
    With one intra-op thread every variant computes on the calling thread, so
    the CPU time is what the call costs even when a loaded machine preempts
    it (wall time then favours short calls, which are interrupted less)."""
    wall, cpu = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.thread_time()
        fn(x)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(wall), statistics.median(cpu)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", required=True)
    p.add_argument("--ops", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--zoo", default="")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--threads", default="1")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", default="encoder2,lstm_cls")
    a = p.parse_args()
    torch.ops.load_library(a.ops)
    os.makedirs(a.work, exist_ok=True)
    torch.manual_seed(0)

    models = []  # (name, nn.Module, example maker, float TorchScript path)
    for name in [m for m in a.models.split(",") if m]:
        torch.manual_seed(0)
        module = {"encoder2": Encoder2, "lstm_cls": LstmClassifier}[name]().eval()
        models.append((name, module, lambda b: torch.randint(0, 10000, (b, 64)), "int64"))
    for item in [z for z in a.zoo.split(",") if z]:
        name, path = item.split("=")
        models.append(("zoo " + name, zoo_module(name, path), lambda b: torch.rand(b, 1, 28, 28), "float32"))

    load_start = os.getloadavg()[0]
    rows = []
    for name, module, make_input, dtype in models:
        for threads in [int(t) for t in a.threads.split(",")]:
            set_threads(threads)
            for batch in [int(b) for b in a.batches.split(",")]:
                x = make_input(batch)
                tag = name.replace(" ", "_") + f"_b{batch}"
                with torch.no_grad():
                    fp32 = torch.jit.freeze(torch.jit.trace(module, x, check_trace=False).eval())
                    fp32_path = os.path.join(a.work, tag + ".fp32.pt")
                    torch.jit.save(torch.jit.trace(module, x, check_trace=False), fp32_path)
                    theirs = torch.jit.trace(torch_dynamic(module), x, check_trace=False).eval()
                ours_path = os.path.join(a.work, tag + ".ours.pt")
                shape = ",".join(str(s) for s in x.shape)
                log = subprocess.run([a.cli, "quantize", "--dynamic", fp32_path, "-o", ours_path, "--input-shape", shape,
                                      "--input-dtype", dtype, "--threads", str(threads), "--json"],
                                     check=True, capture_output=True, text=True).stdout
                ours = torch.jit.load(ours_path).eval()
                with torch.no_grad():
                    ref = fp32(x)
                    sq_theirs, sq_ours = sqnr_db(ref, theirs(x)), sqnr_db(ref, ours(x))
                    for f in (fp32, theirs, ours):
                        f(x)
                    t = {"fp32": [], "theirs": [], "ours": []}
                    for _ in range(a.rounds):
                        for key, f in (("fp32", fp32), ("theirs", theirs), ("ours", ours)):
                            t[key].append(timed(f, x, a.reps))
                med = {k: statistics.median(w for w, _ in v) * 1e3 for k, v in t.items()}
                cpu = {k: statistics.median(c for _, c in v) * 1e3 for k, v in t.items()}
                layers = json.loads(log)["layers"]
                kept = sum(1 for l in layers if l["precision"] != "int8")
                rows.append((name, threads, batch, cpu["fp32"], cpu["theirs"], cpu["ours"], sq_theirs, sq_ours,
                             f"{len(layers) - kept}/{len(layers)}", med["fp32"], med["theirs"], med["ours"]))
                print(rows[-1], flush=True)

    print()
    print(f"torch {torch.__version__}, quantized engine {torch.backends.quantized.engine}, "
          f"load average {os.getloadavg()[0]:.1f} at the end (started at {load_start:.1f})")
    print("CPU ms: median CPU time of the calling thread per call; wall ms: median wall time, same calls")
    print("| model | threads | batch | FP32 LibTorch CPU ms | PyTorch dynamic CPU ms | ours CPU ms | ours vs PyTorch dynamic | "
          "ours vs FP32 | wall ms (FP32 / PyTorch / ours) | SQNR PyTorch dB | SQNR ours dB | our INT8 layers |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, threads, batch, f, th, o, st, so, n, wf, wt, wo in rows:
        print(f"| {name} | {threads} | {batch} | {f:.3f} | {th:.3f} | {o:.3f} | {th / o:.2f}x | {f / o:.2f}x | "
              f"{wf:.2f} / {wt:.2f} / {wo:.2f} | {st:.1f} | {so:.1f} | {n} |")


if __name__ == "__main__":
    main()
