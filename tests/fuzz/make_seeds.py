#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/NAME/).
Run once, with Debian's interpreter and a built ops library; the seeds are
committed:  /usr/bin/python3 make_seeds.py build/src/ops/libcompress_ops.so"""
import gzip
import io
import json
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))


def write(corpus, name, data):
    d = os.path.join(here, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def packed_seeds(lib):
    torch.ops.load_library(lib)
    ops = torch.ops.compress
    torch.manual_seed(0)
    w = torch.randint(-128, 128, (5, 12), dtype=torch.int8)
    trained = torch.randint(-40, 41, (20, 16), dtype=torch.int8)
    trained[0, 0], trained[0, 1] = 127, 120  # one saturating pair: a correction entry
    blobs = {
        "linear_ref": ops.pack_linear_int8(w, 3, "ref"),
        # Uniform weights: the exact layout avx2_n16k2_s8. The corpus also keeps
        # linear_avx2_s16 and depthwise, written when the packers chose the s16
        # forms (avx2_n16k2_s16, depthwise_s16): blobs in old models still load.
        "linear_avx2_s8": ops.pack_linear_int8(w, 3, "avx2"),
        "linear_avx2_u8": ops.pack_linear_int8(trained, 3, "avx2"),
        "linear_avx2_u7": ops.pack_linear_int8(trained, 3, "avx2_u7"),
        "linear_vnni": ops.pack_linear_int8(w, 3, "avx512vnni"),
        "conv_ref": ops.pack_conv2d_int8(torch.randint(-128, 128, (4, 3, 3, 3), dtype=torch.int8), 5, 1, "ref"),
        "conv_avx2": ops.pack_conv2d_int8(torch.randint(-128, 128, (4, 3, 3, 3), dtype=torch.int8), 5, 1, "avx2"),
        "depthwise_s8": ops.pack_conv2d_int8(torch.randint(-128, 128, (6, 1, 3, 3), dtype=torch.int8), 5, 6, "auto"),
    }
    mask = torch.zeros(5, 12, dtype=torch.uint8)
    mask[:, 0::4] = 1
    mask[:, 2::4] = 1
    blobs["sparse_1x4"] = ops.pack_linear_int8_sparse(w, mask, 2, "1x4")
    blobs["sparse_2_4"] = ops.pack_linear_int8_sparse(w, mask, 2, "2:4")
    # The storage forms save_module writes (stored_s8, stored_u7_s8).
    for name in ("linear_vnni", "linear_avx2_u7", "conv_avx2", "depthwise_s8"):
        blobs["stored_" + name] = ops.packed_weight_for_storage(blobs[name])
    for name, t in blobs.items():
        write("packed", name, bytes(t.numpy().tobytes()))


def idx(dims, data, kind=0x08):
    b = bytes([0, 0, kind, len(dims)])
    for d in dims:
        b += d.to_bytes(4, "big")
    return b + bytes(data)


def idx_seeds():
    images = idx([2, 3, 3], range(18))
    write("idx", "images", images)
    write("idx", "labels", idx([4], [0, 1, 2, 9]))
    write("idx", "images_gz", gzip.compress(images))
    write("idx", "truncated", images[:-3])
    write("idx", "bomb_gz", gzip.compress(idx([2], [1, 2]) + bytes(1 << 21)))


def shape_seeds():
    for i, text in enumerate(["1,3,224,224", "2,3,32,32", "1", "1,,3", "-1,3", ",", "3.5,2",
                              "99999999999999999999,1", "0x10,4", " 1,2"]):
        write("shape", "s%02d" % i, text.encode())


def saved(module):
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    return buf.getvalue()


class Dataset(torch.nn.Module):
    """A tensor dataset file as compress writes one: attributes only."""

    def __init__(self, inputs, labels, num_classes=None):
        super().__init__()
        self.inputs = inputs
        self.labels = labels
        if num_classes is not None:
            self.num_classes = num_classes

    def forward(self, x):
        return x


def dataset_seeds():
    torch.manual_seed(0)
    write("dataset", "images", saved(torch.jit.script(Dataset(torch.rand(4, 1, 3, 3), torch.tensor([0, 2, 1, 2]), 3))))
    write("dataset", "uint8_no_classes",
          saved(torch.jit.script(Dataset(torch.randint(0, 255, (3, 2), dtype=torch.uint8), torch.tensor([1, 0, 1])))))
    write("dataset", "float_labels", saved(torch.jit.script(Dataset(torch.rand(2, 2), torch.tensor([0.5, 1.0])))))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.bn = torch.nn.BatchNorm2d(2)
        self.fc = torch.nn.Linear(2, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))


class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


def import_seeds():
    torch.manual_seed(0)
    write("import", "linear", saved(torch.jit.trace(torch.nn.Linear(3, 2).eval(), torch.rand(1, 3))))
    write("import", "conv_bn_fc", saved(torch.jit.trace(Tiny().eval(), torch.rand(1, 1, 5, 5))))
    write("import", "scripted_if", saved(torch.jit.script(Branchy())))


def recipe_seeds():
    here_recipes = os.path.join(here, "..", "..", "examples", "recipes")
    for name in ("quickstart", "cnn"):
        with open(os.path.join(here_recipes, name + ".json"), "rb") as f:
            write("recipe", name, f.read())
    write("recipe", "every_stage", json.dumps({
        "model": {"arch": "cnn", "width": 0.5, "seed": 3},
        "input_shape": [1, 1, 28, 28],
        "stages": [{"train": {"epochs": 1}}, {"prune": {"target_macs": 0.5}},
                   {"qat": {"epochs": 1}}, {"quantize": {"method": "minmax"}}, {"bench": {"batches": [1]}}],
    }).encode())
    write("recipe", "bad_fields", b'{"model": {"file": "x.pt", "arch": "cnn"}, "stages": [{"prun": {}}, 3], "threads": 0}')
    write("recipe", "not_json", b'{"model": ')


if __name__ == "__main__":
    packed_seeds(sys.argv[1])
    idx_seeds()
    shape_seeds()
    dataset_seeds()
    import_seeds()
    recipe_seeds()
