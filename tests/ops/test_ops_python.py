#!/usr/bin/python3
"""Save/load of modules using the compress ops, across C++ and Python.

usage: test_ops_python.py LIBCOMPRESS_OPS OPS_ROUNDTRIP WORKDIR
1. C++ saves a module (ops_roundtrip save); Python loads it after
   torch.ops.load_library and reproduces the output stored in it.
2. Python scripts a module with the ops, checks it against exact integer
   references (also with a weight in the storage form), saves it; C++
   (ops_roundtrip check) loads it and reproduces it.
"""
import os
import subprocess
import sys

try:
    import torch
except ImportError as e:
    print(f"SKIPPED: {sys.executable} lacks torch: {e} (install python3-torch)")
    sys.exit(77)


def main():
    lib, roundtrip, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    torch.ops.load_library(lib)
    ops = torch.ops.compress

    # 1. C++ -> Python
    cpp_path = os.path.join(work, "from_cpp.pt")
    subprocess.run([roundtrip, "save", cpp_path], check=True)
    m = torch.jit.load(cpp_path)
    got = m(m.example_input)
    assert got.unique().numel() > 3, "degenerate test output: %s" % got
    assert torch.equal(got, m.expected_output), "Python does not reproduce the C++ module's output"

    # The ops' outputs reuse freed blocks of the CPU block cache; Python
    # reads its state and sets its limit (0 hands every held block back).
    limit, cached, installed = ops.cpu_block_cache_stats()
    expected = int(os.environ.get("COMPRESS_CPU_CACHE_MB") or 1024) << 20  # default 1024 MiB
    assert limit == expected and not installed, (limit, installed)  # nothing installs it in Python
    big = torch.rand(2, 16, 128, 128)  # 512 KiB of uint8 codes: cached when freed
    codes = ops.quantize_u8_nhwc(big, 0.01, 3, 255)
    first = codes.data_ptr()
    del codes
    assert ops.cpu_block_cache_stats()[1] >= cached + (512 << 10), "a freed op output was not kept"
    assert ops.quantize_u8_nhwc(big, 0.01, 3, 255).data_ptr() == first, "the freed block was not reused"
    ops.set_cpu_block_cache_limit(0)
    assert ops.cpu_block_cache_stats()[:2] == (0, 0), ops.cpu_block_cache_stats()
    ops.set_cpu_block_cache_limit(limit)
    try:
        ops.set_cpu_block_cache_limit(-1)
        raise AssertionError("a negative limit was accepted")
    except RuntimeError as e:
        assert "must not be negative" in str(e), e
    assert ops.cpu_block_cache_stats()[0] == limit
    check_unreadable_cache_limit(lib)

    # 2. Python -> C++
    torch.manual_seed(0)
    k, n, zp = 40, 12, 33
    w = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    x = torch.randint(0, 256, (5, k), dtype=torch.uint8)
    exact = ((x.long() - zp) @ w.long().t()).float()
    y = ops.linear_int8(x, ops.pack_linear_int8(w, zp), torch.ones(n), None, 0, False, torch.float32)
    assert torch.equal(y, exact), "linear_int8 is not exact in Python"

    wc = torch.randint(-128, 128, (6, 4, 3, 3), dtype=torch.int8)
    xc = torch.randint(0, 256, (1, 7, 7, 4), dtype=torch.uint8)
    ref = torch.nn.functional.conv2d((xc.float() - zp).permute(0, 3, 1, 2), wc.float(), padding=1)
    yc = ops.conv2d_int8(xc, ops.pack_conv2d_int8(wc, zp), torch.ones(6), None, [1, 1], [1, 1], [1, 1],
                         0, False, torch.float32)
    assert torch.equal(yc, ref.permute(0, 2, 3, 1).contiguous()), "conv2d_int8 is not exact in Python"
    # The storage form (what save_module writes) runs as the packing does,
    # and packs back to it for this CPU.
    packed = ops.pack_conv2d_int8(wc, zp)
    stored = ops.packed_weight_for_storage(packed)
    if ops.kernel_isa() == "ref":  # packed row-major already: no other storage form
        assert torch.equal(stored, packed), "the reference layout was changed for storage"
    else:
        assert stored.numel() < packed.numel(), "the storage form is not smaller"
    ys = ops.conv2d_int8(xc, stored, torch.ones(6), None, [1, 1], [1, 1], [1, 1], 0, False, torch.float32)
    assert torch.equal(ys, yc), "conv2d_int8 computes otherwise with the storage form"
    assert torch.equal(ops.packed_weight_for_cpu(stored), packed), "the storage form does not pack back"

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", ops.pack_linear_int8(w, zp))
            self.register_buffer("wc", ops.pack_conv2d_int8(wc, zp))
            self.register_buffer("s", torch.full((n,), 0.002))
            self.register_buffer("sc", torch.full((6,), 0.003))
            self.register_buffer("b", torch.linspace(-1.0, 1.0, n))
            self.k = k
            self.zp = zp

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.ops.compress.conv2d_int8(x, self.wc, self.sc, None, [1, 1], [1, 1], [1, 1], 128, False,
                                               torch.uint8)
            f = torch.ops.compress.dequantize_u8(y, 0.1, 128).mean([1, 2])
            f = torch.cat([f, f, f, f, f, f, f], 1)[:, :self.k]
            q = torch.ops.compress.quantize_u8(f, 0.05, self.zp)
            return torch.ops.compress.linear_int8(q, self.w, self.s, self.b, 0, True, torch.float32)

    net = torch.jit.script(Net())
    py_path = os.path.join(work, "from_python.pt")
    expected = net(xc)
    assert expected.unique().numel() > 3, "degenerate test output: %s" % expected
    net.save(py_path)
    loaded = torch.jit.load(py_path)
    assert torch.equal(loaded(xc), expected), "Python does not reproduce its own saved module"
    # C++ expects the input and output inside the module: re-save with them as buffers.
    class WithData(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.register_buffer("example_input", xc)
            self.register_buffer("expected_output", expected)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    torch.jit.script(WithData(Net())).save(py_path)
    r = subprocess.run([roundtrip, "check", py_path])
    assert r.returncode == 0, "C++ does not reproduce the Python module's output"
    # 3. Bad input: one line, naming the op and the problem.
    try:
        ops.linear_int8(x.float(), ops.pack_linear_int8(w, zp), torch.ones(n), None, 0, False, torch.float32)
        raise AssertionError("a float input was accepted")
    except RuntimeError as e:
        msg = str(e).strip()
        assert msg.startswith("compress::linear_int8: input must be a uint8"), msg
        assert "\n" not in msg, "multi-line error: " + msg
    print("ok: C++ -> Python and Python -> C++ round trips reproduce the saved outputs; errors are one line")


def check_unreadable_cache_limit(lib):
    """An unreadable COMPRESS_CPU_CACHE_MB in a process that never asks for it
    (Python): one warning on stderr (LibTorch's log: torch.ops does not turn
    it into a Python warning) when the cache first serves a block under the
    default, none when the program sets its own limit first."""
    child = (
        "import sys, torch\n"
        "torch.ops.load_library(sys.argv[1])\n"
        "ops = torch.ops.compress\n"
        "if sys.argv[2] == 'own': ops.set_cpu_block_cache_limit(64 << 20)\n"
        "for _ in range(2): ops.quantize_u8_nhwc(torch.rand(2, 16, 128, 128), 0.01, 3, 255)\n"
        "print(ops.cpu_block_cache_stats()[0])\n")
    env = dict(os.environ, COMPRESS_CPU_CACHE_MB="256abc")
    said = "COMPRESS_CPU_CACHE_MB='256abc' is not a whole number of mebibytes; using 1024 MiB"
    for mode, warnings_expected, limit_expected in (("default", 1, 1024 << 20), ("own", 0, 64 << 20)):
        r = subprocess.run([sys.executable, "-c", child, lib, mode], env=env, check=True, capture_output=True, text=True)
        assert int(r.stdout) == limit_expected, (mode, r.stdout)
        assert r.stderr.count(said) == warnings_expected, (mode, r.stderr)

if __name__ == "__main__":
    main()
