#!/usr/bin/python3
"""A wide MLP for Fashion-MNIST, traced to TorchScript: the kind of model whose
cost is all in linear layers, where 1x4 block sparsity can pay off in INT8
(docs/quantization.md, "Sparse INT8").

    /usr/bin/python3 examples/sparsity/make_mlp.py out/sparse/mlp.pt [--hidden 1024]

flatten -> 784 x H -> ReLU -> H x H -> ReLU -> H x 10, random init (seed 0);
train it with `compress train --init mlp.pt --recipe cnn --data fashion-mnist`."""
import argparse

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("output")
    ap.add_argument("--hidden", type=int, default=1024)
    a = ap.parse_args()
    torch.manual_seed(0)
    h = a.hidden
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, h), torch.nn.ReLU(),
                                torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 10))
    torch.jit.trace(model.train(), torch.rand(2, 1, 28, 28)).save(a.output)


if __name__ == "__main__":
    main()
