#!/usr/bin/env bash
# Sets up a fresh machine (idempotent), builds, and runs the whole test suite.
#   scripts/test.sh [CTEST ARGS...]             ./build, Release
#   scripts/test.sh --sanitize [CTEST ARGS...]  ./build-asan, -fsanitize=address,undefined
#                                               (docs/reliability.md: what runs, what LibTorch needs)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
if [ "${1:-}" = "--sanitize" ]; then
  shift
  build="${COMPRESS_BUILD_DIR:-$root/build-asan}"
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCOMPRESS_SANITIZE=address,undefined -DCOMPRESS_BUILD_BENCH=OFF -DCOMPRESS_ENABLE_CUDA=OFF >/dev/null
  fi
  ninja -C "$build" -j2
  cd "$build"
  # Every ASan error and every UBSan finding stops the test
  # (-fno-sanitize-recover); leaks are checked (ASan's default). Not run:
  # install_and_consume, which builds an uninstrumented program against the
  # instrumented libraries.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/scripts/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  # Every test that loads a model in Python has "python" or "Python" in its name.
  ctest --output-on-failure -j2 -E "[Pp]ython|install_and_consume" "$@"
  # Those load the instrumented libcompress_ops.so into the uninstrumented
  # python3 (the ops round trips, and the CLI, quantization, sequence and pqk
  # cases that check a model loads in Python): the sanitizer runtimes must be
  # preloaded, and leak checking is off for them (the interpreter and torch's
  # Python side leave megabytes allocated at exit by design).
  # Their filter comes last: ctest keeps the last -R, and a caller's -R
  # would otherwise run every test it matches a second time.
  LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS="detect_leaks=0" ctest --output-on-failure -j2 "$@" -R "[Pp]ython"
  exit
fi
bash "$root/scripts/build.sh"
cd "${COMPRESS_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j2 "$@"
