#!/usr/bin/env python3
"""Summarises compress_bench_int8 JSON against the issue's targets.

usage: summarize.py RUN.json [RUN2.json ...]   (prints Markdown)
Ratios are other/ours on medians measured side by side in one process.
"""
import json
import math
import re
import sys


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def m_of(name, ops_row):
    """Rows of A of a model row: batch 1 fc layers have M = 1; convs have M = batch * OH * OW >= 49."""
    if " fc " in name:
        return int(re.search(r" b(\d+)$", name).group(1))
    return 10**9


def main():
    for path in sys.argv[1:]:
        run = json.load(open(path))
        meta, rows = run["meta"], run["rows"]
        print(f"### {path}: isa {meta['isa']}, threads {meta['threads']}, {meta['reps']} repeats (median)\n")
        if "maddubs_gmacs_per_core" in meta:
            print(f"- measured ceiling (vpmaddubsw+vpmaddwd+vpaddd, x{meta['threads']} cores): "
                  f"{2 * meta['maddubs_gmacs_per_core'] * meta['threads']:.0f} GOPS; "
                  f"s16 vpmaddwd path: {2 * meta['madd_gmacs_per_core'] * meta['threads']:.0f} GOPS; "
                  f"obtained clock {meta['clock_ghz']:.2f} GHz")
        sq = [r for r in rows if r["section"] == "square"]
        for r in sq:
            ours = r["ms"]["ours"]
            print(f"- square {r['name']}: ours {r['ops'] / ours / 1e6:.1f} GOPS, "
                  f"oneDNN/ours {r['ms']['oneDNN'] / ours:.2f}x, OpenBLAS/ours {r['ms']['OpenBLAS'] / ours:.2f}x")
        model = [r for r in rows if r["section"] == "model"]
        if model:
            g_all = geomean([r["ms"]["oneDNN"] / r["ms"]["ours"] for r in model if r["ms"].get("oneDNN")])
            small = [r for r in model if m_of(r["name"], r) <= 16]
            g_small = geomean([r["ms"]["oneDNN"] / r["ms"]["ours"] for r in small])
            g_blas = geomean([r["ms"]["OpenBLAS"] / r["ms"]["ours"] for r in model if r["ms"].get("OpenBLAS")])
            dw = [r for r in model if " dw " in r["name"]]
            gemmlike = [r for r in model if " dw " not in r["name"] and "stem" not in r["name"] and "conv1" not in r["name"]]
            print(f"- model shapes: geomean oneDNN/ours {g_all:.2f}x over {len(model)} layers; "
                  f"M <= 16 ({len(small)} layers) {g_small:.2f}x; OpenBLAS fp32/ours {g_blas:.2f}x")
            print(f"  - without depthwise and C=3 stems: {geomean([r['ms']['oneDNN'] / r['ms']['ours'] for r in gemmlike]):.2f}x; "
                  f"depthwise alone: {geomean([r['ms']['oneDNN'] / r['ms']['ours'] for r in dw]):.2f}x")
        sp = [r for r in rows if r["section"] == "sparse"]
        for r in sp:
            print(f"- {r['name']}: dense/sparse {r['ms']['dense'] / r['ms']['sparse']:.2f}x")
        print()


if __name__ == "__main__":
    main()
