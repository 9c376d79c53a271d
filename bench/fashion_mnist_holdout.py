#!/usr/bin/env python3
"""A held-out split of the Fashion-MNIST *training* images, as IDX files that
`--data fashion-mnist --data-dir OUT` reads: its train split is the first
50,000 training images, its test split the last 10,000 (never the real test
set). Variants are chosen on it; the real test set only confirms the choice
(docs/pruning.md, "Attention-guided pruning").

    python3 bench/fashion_mnist_holdout.py OUT [--src /usr/share/datasets/fashion-mnist] [--keep 50000]
"""
import argparse
import gzip
import os
import struct
import sys


def read(path):
    if os.path.exists(path + ".gz"):
        with gzip.open(path + ".gz", "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    # Where the CLI looks by default (src/data/idx.cpp, fashion_mnist_dir).
    data_dir = os.environ.get("COMPRESS_DATA_DIR")
    ap.add_argument("--src", default=os.path.join(data_dir, "fashion-mnist") if data_dir else "/usr/share/datasets/fashion-mnist")
    ap.add_argument("--keep", type=int, default=50000, help="training images kept for training; the rest are held out")
    a = ap.parse_args()
    images = read(os.path.join(a.src, "train-images-idx3-ubyte"))
    labels = read(os.path.join(a.src, "train-labels-idx1-ubyte"))
    magic, n, rows, cols = struct.unpack(">IIII", images[:16])
    if magic != 2051 or struct.unpack(">II", labels[:8]) != (2049, n):
        sys.exit("not a Fashion-MNIST training split: " + a.src)
    if not 0 < a.keep < n:
        sys.exit(f"--keep must be in (0, {n})")
    px = rows * cols
    os.makedirs(a.out, exist_ok=True)

    def write(stem, lo, hi):
        with open(os.path.join(a.out, stem + "-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 2051, hi - lo, rows, cols) + images[16 + lo * px:16 + hi * px])
        with open(os.path.join(a.out, stem + "-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 2049, hi - lo) + labels[8 + lo:8 + hi])

    write("train", 0, a.keep)
    write("t10k", a.keep, n)
    print(f"{a.out}: train = training images [0, {a.keep}), test = [{a.keep}, {n})")


if __name__ == "__main__":
    main()
