#!/usr/bin/env bash
# One-go check of the CUDA kernels on a GPU machine (sized for a 15-minute
# budget; about 5 minutes of build on 16 cores, then a few minutes of tests
# and benchmark):
#   1. prints the commit and nvidia-smi's view of the GPU; exits 1 with one
#      line if there is no GPU;
#   2. configures build-gpu with COMPRESS_KERNELS_ONLY (kernels, their tests,
#      the CUDA benchmark; no LibTorch) and builds only those targets;
#   3. runs the kernel tests: the CUDA ones against the CPU reference, the
#      index maths, and the instruction checks (embedded PTX/cubins and
#      cuobjdump -sass);
#   4. runs compress_bench_cuda_int8 (ours vs cuBLASLt INT8) and prints its table.
# Everything it prints is also in build-gpu/gpu-check.log.
#
#   scripts/gpu-check.sh               the check
#   scripts/gpu-check.sh --pack-deps   on a developer machine: copy Catch2 v2
#       (header and CMake package) into .gpu-deps/ (git-ignored), for GPU
#       machines without it; carry that folder along with the working tree.
# Environment: COMPRESS_GPU_BUILD_DIR (default build-gpu), BENCH_SHAPES
# (default: the benchmark's own 4096^3, 1024x4096x4096, 12544x64x576).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.gpu-deps"

if [ "${1:-}" = "--pack-deps" ]; then
  [ -f /usr/include/catch2/catch.hpp ] && [ -d /usr/lib/cmake/Catch2 ] ||
    { echo "gpu-check: Catch2 v2 is not installed here (scripts/setup.sh installs it)" >&2; exit 1; }
  rm -rf "$deps" && mkdir -p "$deps/include" "$deps/lib/cmake"
  cp -r /usr/include/catch2 "$deps/include/" && cp -r /usr/lib/cmake/Catch2 "$deps/lib/cmake/"
  echo "gpu-check: Catch2 copied to $deps ($(du -sh "$deps" | cut -f1))"
  exit 0
fi

build="${COMPRESS_GPU_BUILD_DIR:-$root/build-gpu}"
mkdir -p "$build"
exec > >(tee "$build/gpu-check.log") 2>&1
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "commit"
git -C "$root" log -1 --format='%H %s' 2>/dev/null || echo "(not a git checkout)"
git -C "$root" status --porcelain 2>/dev/null | head -5 | sed 's/^/  uncommitted: /' || true

step "GPU"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-check: no GPU: nvidia-smi is not installed"; exit 1
fi
if ! nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null; then
  echo "gpu-check: no GPU: nvidia-smi found no usable device"; exit 1
fi
nvcc="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
[ -x "$nvcc" ] || { echo "gpu-check: no nvcc (set CUDACXX)"; exit 1; }
"$nvcc" --version | tail -2
echo "cores: $(nproc)"

step "configure ($build)"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
prefix=()
[ -d "$deps" ] && prefix=(-DCMAKE_PREFIX_PATH="$deps")
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCOMPRESS_KERNELS_ONLY=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" "${launcher[@]}" "${prefix[@]}" >"$build/configure.log" 2>&1 ||
  { tail -20 "$build/configure.log"; echo "gpu-check: configure failed (Catch2 missing? run --pack-deps here and carry .gpu-deps)"; exit 1; }
grep -q "CUDA kernels ON" "$build/configure.log" || { echo "gpu-check: CMake did not enable the CUDA kernels"; exit 1; }

step "build"
cmake --build "$build" -j "$(nproc)" --target test_kernels compress_kernels_cuda compress_bench_cuda_int8 \
  >"$build/build.log" 2>&1 || { tail -30 "$build/build.log"; echo "gpu-check: build failed"; exit 1; }

step "tests"
status=0
(cd "$build" && ctest --output-on-failure -j "$(nproc)" -R '^(test_kernels:|cuda_kernels_)' --timeout 300) |
  tee "$build/ctest.log" || status=1
# With a GPU (and cuobjdump) every CUDA case must run: a skip here is a failure.
if grep -E "^\s+[0-9]+ - .*(cuda|sm80|sm90a).*\(Skipped\)" "$build/ctest.log"; then
  echo "gpu-check: CUDA tests above were skipped on a GPU machine"; status=1
fi

step "benchmark"
# shellcheck disable=SC2086
"$build/bin/compress_bench_cuda_int8" ${BENCH_SHAPES:-} || status=1

step "done: $([ $status -eq 0 ] && echo 'all passed' || echo 'FAILURES above')"
exit $status
