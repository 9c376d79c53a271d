#!/usr/bin/env python3
"""Checks that the built CUDA kernels hold the tensor-core instructions they
are written for, per architecture, and not only the __trap() fallback.

  check_cuda_isa.py embedded LIBRARY   PTX and cubins embedded in the library
                                       (needs only Python; the kernels are
                                       built with --compress-mode=none)
  check_cuda_isa.py sass LIBRARY [CUOBJDUMP]
                                       the machine code, through cuobjdump
                                       -sass; exit 77 (skipped) without it

Exit 0: every check passed; 1: a check failed (one line each on stderr);
2: the library cannot be read; 77: cuobjdump is not installed.
"""
import os
import re
import shutil
import struct
import subprocess
import sys

# kernel (a substring of its mangled name) -> architecture -> what it must hold.
# "ptx": an instruction prefix in the kernel's PTX body; "sass": a regular
# expression over its SASS; None: the kernel is the trap fallback there.
EXPECTED = {
    "gemm_mma_m16n8k32": {
        "80": {"ptx": "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32", "sass": r"\bIMMA\.16832\b"},
        "90a": {"ptx": "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32", "sass": r"\bIMMA\.16832\b"},
    },
    "gemm_wgmma_m64n8k32": {
        "80": None,  # wgmma exists only on sm_90a
        "90a": {"ptx": "wgmma.mma_async.sync.aligned.m64n8k32.s32.u8.s8", "sass": r"\bIGMMA\."},
    },
    "spmm_mma_sp_m16n8k64": {
        "80": {"ptx": "mma.sp::ordered_metadata.sync.aligned.m16n8k64", "sass": r"\bIMMA\.(SP\b|\S*16864)"},
        "90a": {"ptx": "mma.sp::ordered_metadata.sync.aligned.m16n8k64", "sass": r"\bIMMA\.(SP\b|\S*16864)"},
    },
}
# A trap-only kernel is a handful of instructions (16 bytes each on sm_80+).
TRAP_ONLY_MAX_TEXT_BYTES = 16 * 16

failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message, file=sys.stderr)


def ar_members(data):
    """(name, bytes) of each member of a System V / GNU ar archive, or the
    file itself if it is not an archive (an object or shared library)."""
    if not data.startswith(b"!<arch>\n"):
        return [("", data)]
    members, pos = [], 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode(errors="replace").strip()
        size = int(header[48:58].decode().strip())
        members.append((name, data[pos + 60:pos + 60 + size]))
        pos += 60 + size + (size & 1)
    return members


def elf_sections(elf):
    """{name: bytes} of a little-endian ELF64 file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return {}
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx]
    names = elf[strtab[4]:strtab[4] + strtab[5]]
    out = {}
    for h in headers:
        name = names[h[0]:names.index(b"\0", h[0])].decode()
        out[name] = b"" if h[1] == 8 else elf[h[4]:h[4] + h[5]]  # SHT_NOBITS has no bytes
    return out


def fatbin_entries(fatbin):
    """(arch, kind, payload) of each entry of an .nv_fatbin section: kind 'ptx'
    or 'elf' by the payload's own signature, arch the entry header's number."""
    entries, pos = [], 0
    while pos + 16 <= len(fatbin):
        magic, _version, header_size, total = struct.unpack_from("<IHHQ", fatbin, pos)
        if magic != 0xBA55ED50:
            break
        entry, end = pos + header_size, pos + header_size + total
        while entry + 0x40 <= end:
            _kind, _unk, entry_header, payload_size = struct.unpack_from("<HHIQ", fatbin, entry)
            arch, = struct.unpack_from("<I", fatbin, entry + 0x1C)
            payload = fatbin[entry + entry_header:entry + entry_header + payload_size]
            if payload.startswith(b"\x28\xb5\x2f\xfd") or not (payload.startswith(b"\x7fELF") or b".target" in payload[:4096]):
                print("error: compressed device code in the fatbin: build the kernels with --compress-mode=none",
                      file=sys.stderr)
                sys.exit(2)
            kind = "elf" if payload.startswith(b"\x7fELF") else "ptx"
            entries.append((str(arch), kind, payload))
            entry += entry_header + payload_size
        pos = end
    return entries


def ptx_functions(ptx):
    """{mangled name: body} of the .entry functions of a PTX text."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\S+?)\s*\(", ptx):
        start = ptx.index("{", m.end())
        depth, i = 0, start
        while True:
            depth += {"{": 1, "}": -1}.get(ptx[i], 0)
            if depth == 0:
                break
            i += 1
        out[m.group(1)] = ptx[start:i + 1]
    return out


def find(functions, key):
    names = [n for n in functions if key in n]
    return names[0] if len(names) == 1 else None


def real_kernels(functions_by_arch, prefix, trap_marker):
    """(kernel, arch, expectation, body) of each kernel that must hold its
    instruction; reports the missing ones, those containing `trap_marker`,
    and checks that the expected trap fallbacks are one."""
    for key, per_arch in EXPECTED.items():
        for arch, want in per_arch.items():
            functions = functions_by_arch.get(arch, {})
            name = find(functions, key)
            if name is None:
                fail(f"{prefix}{arch}: kernel {key} not found (architectures: {sorted(functions_by_arch)})")
            elif want is None:
                if trap_marker not in functions[name]:
                    fail(f"{prefix}{arch}: {key} should be the trap fallback here")
            elif trap_marker in functions[name]:
                fail(f"{prefix}{arch}: {key} contains {trap_marker}")
            else:
                yield key, arch, want, functions[name]


def ptx_arch(ptx):
    m = re.search(r"^\s*\.target\s+sm_(\w+)", ptx, re.M)
    return m.group(1) if m else "?"


def check_embedded(lib):
    ptx_by_arch, text_by_arch = {}, {}
    for _name, member in ar_members(open(lib, "rb").read()):
        fatbin = elf_sections(member).get(".nv_fatbin")
        if not fatbin:
            continue
        for arch, kind, payload in fatbin_entries(fatbin):
            if kind == "ptx":
                ptx = payload.split(b"\0")[0].decode()
                ptx_by_arch[ptx_arch(ptx)] = ptx_functions(ptx)
            else:
                sections = elf_sections(payload)
                text_by_arch[arch] = {n[len(".text."):]: len(b) for n, b in sections.items() if n.startswith(".text.")}
    for arch in ("80", "90a"):
        if arch not in ptx_by_arch:
            fail(f"{lib}: no PTX for compute_{arch} (found {sorted(ptx_by_arch)})")
        if arch[:2] not in text_by_arch:
            fail(f"{lib}: no cubin for sm_{arch} (found {sorted(text_by_arch)})")
    for key, arch, want, body in real_kernels(ptx_by_arch, "compute_", "trap;"):
        if want["ptx"] not in body:
            fail(f"compute_{arch}: {key} lacks {want['ptx']}")
            continue
        sizes = text_by_arch.get(arch[:2], {})
        sname = find(sizes, key)
        if sname is None:
            fail(f"sm_{arch}: kernel {key} has no machine code in the cubin")
        elif sizes[sname] <= TRAP_ONLY_MAX_TEXT_BYTES:
            fail(f"sm_{arch}: {key} is only {sizes[sname]} bytes of machine code, the size of a trap stub")
        else:
            print(f"ok  sm_{arch}  {key}: PTX has {want['ptx']}, no trap; {sizes[sname]} bytes of machine code")

def sass_functions(text):
    """{arch: {function: sass}} from cuobjdump -sass output."""
    out, arch, func = {}, None, None
    for line in text.splitlines():
        m = re.match(r"\s*arch\s*=\s*sm_(\w+)", line)
        if m:
            arch, func = m.group(1), None
            out.setdefault(arch, {})
            continue
        m = re.match(r"\s*Function\s*:\s*(\S+)", line)
        if m and arch is not None:
            func = m.group(1)
            out[arch][func] = ""
            continue
        if func is not None:
            out[arch][func] += line + "\n"
    return out


def check_sass(lib, cuobjdump):
    run = subprocess.run([cuobjdump, "-sass", lib], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"error: {cuobjdump} -sass {lib}: {run.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        sys.exit(2)
    by_arch = sass_functions(run.stdout)
    for key, arch, want, sass in real_kernels(by_arch, "sm_", "BPT.TRAP"):
        hits = [l.strip() for l in sass.splitlines() if re.search(want["sass"], l)]
        if not hits:
            fail(f"sm_{arch}: {key} has no instruction matching {want['sass']}")
        else:
            first = re.sub(r"^/[*].*?[*]/\s*", "", hits[0])  # drop the /*0123*/ address
            print(f"ok  sm_{arch}  {key}: {len(hits)} x {first}")

def main(argv):
    if len(argv) < 3 or argv[1] not in ("embedded", "sass"):
        print(__doc__, file=sys.stderr)
        return 2
    lib = argv[2]
    if not os.path.isfile(lib):
        print(f"error: {lib}: no such file", file=sys.stderr)
        return 2
    if argv[1] == "embedded":
        check_embedded(lib)
    else:
        cuobjdump = argv[3] if len(argv) > 3 and os.path.isfile(argv[3]) else shutil.which("cuobjdump")
        if not cuobjdump:
            print("SKIPPED: cuobjdump is not installed (not beside nvcc, not on PATH)")
            return 77
        check_sass(lib, cuobjdump)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
