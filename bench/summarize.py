#!/usr/bin/env python3
"""Summarises compress_bench_int8 JSON against the issue's targets.

usage: summarize.py RUN.json [RUN2.json ...]   (prints Markdown)
Ratios are other/ours on medians measured side by side in one process.
"ours" is the u8 layout (any activation), "ours u7" the 7-bit layout
(activations 0..127); "best" is the faster of the two where both ran.
"""
import json
import math
import re
import sys


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fx(x):
    return f"{x:.2f}x" if x is not None and math.isfinite(x) else "n/a"


def m_of(name):
    """Rows of A of a model row: batch 1 fc layers have M = 1; convs have M = batch * OH * OW >= 49."""
    if " fc " in name:
        return int(re.search(r" b(\d+)$", name).group(1))
    return 10**9


def ms(row, who):
    v = row["ms"].get(who)
    return v if v is not None and math.isfinite(v) else None


def ours(row, variant):
    """Time of our variant: 'u8', 'u7' or 'best'."""
    u8, u7 = ms(row, "ours"), ms(row, "ours u7")
    if variant == "u8":
        return u8
    if variant == "u7":
        return u7 if u7 is not None else u8  # depthwise has one layout
    return min(x for x in (u8, u7) if x is not None)


def ratio(row, other, variant):
    o, us = ms(row, other), ours(row, variant)
    return o / us if o and us else None


def main():
    for path in sys.argv[1:]:
        run = json.load(open(path))
        meta, rows = run["meta"], run["rows"]
        print(f"### {path}: isa {meta['isa']}, threads {meta['threads']}, {meta['reps']} repeats (median)\n")
        t = meta["threads"]
        if "maddubs_gmacs_per_core" in meta:
            line = (f"- measured instruction-mix ceilings (x{t} cores): u8 path {2 * meta['maddubs_gmacs_per_core'] * t:.0f} GOPS; ")
            if "u7_gmacs_per_core" in meta:
                line += f"7-bit path {2 * meta['u7_gmacs_per_core'] * t:.0f} GOPS; "
            line += f"s16 path {2 * meta['madd_gmacs_per_core'] * t:.0f} GOPS; add-chain clock {meta['clock_ghz']:.2f} GHz"
            print(line)
        for r in (r for r in rows if r["section"] == "square"):
            parts = []
            for v in ("u8", "u7"):
                us = ours(r, v)
                if us:
                    parts.append(f"{v} {r['ops'] / us / 1e6:.1f} GOPS (oneDNN/ours {ms(r, 'oneDNN') / us:.2f}x, "
                                 f"OpenBLAS/ours {ms(r, 'OpenBLAS') / us:.2f}x)")
            print(f"- square {r['name']}: " + "; ".join(parts))
        model = [r for r in rows if r["section"] == "model"]
        if model:
            for v in ("u8", "u7", "best"):
                g_all = geomean([ratio(r, "oneDNN", v) for r in model])
                small = [r for r in model if m_of(r["name"]) <= 16]
                g_small = geomean([ratio(r, "oneDNN", v) for r in small])
                g_blas = geomean([ratio(r, "OpenBLAS", v) for r in model])
                dw = [r for r in model if " dw " in r["name"]]
                stems = [r for r in model if "stem" in r["name"] or "conv1" in r["name"]]
                pw = [r for r in model if " pw " in r["name"]]
                k3 = [r for r in model if "resnet18 l" in r["name"]]
                print(f"- model shapes, ours {v}: geomean oneDNN/ours {fx(g_all)} over {len(model)} layers; "
                      f"M <= 16 ({len(small)}) {fx(g_small)}; OpenBLAS fp32/ours {fx(g_blas)}; "
                      f"resnet18 3x3/1x1 ({len(k3)}) {fx(geomean([ratio(r, 'oneDNN', v) for r in k3]))}, "
                      f"pointwise ({len(pw)}) {fx(geomean([ratio(r, 'oneDNN', v) for r in pw]))}, "
                      f"stems ({len(stems)}) {fx(geomean([ratio(r, 'oneDNN', v) for r in stems]))}, "
                      f"depthwise ({len(dw)}) {fx(geomean([ratio(r, 'oneDNN', v) for r in dw]))}")
        for r in (r for r in rows if r["section"] == "sparse"):
            dense = min(x for x in (ms(r, "dense"), ms(r, "dense u7")) if x is not None)
            print(f"- {r['name']}: best dense/sparse {dense / r['ms']['sparse']:.2f}x "
                  f"(u8-layout dense/sparse {r['ms']['dense'] / r['ms']['sparse']:.2f}x)")
        print()


if __name__ == "__main__":
    main()
