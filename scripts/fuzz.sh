#!/usr/bin/env bash
# Fuzzes every harness of tests/fuzz with libFuzzer under ASan + UBSan.
#   scripts/fuzz.sh [SECONDS [NAME...]]    (per harness, default 60; NAME:
#   packed idx shape checkpoint dataset import recipe, default all of them)
# Builds the normal tree (the shape harness links its libcompress.so), then
# build-fuzz from tests/fuzz/libfuzzer with clang++-14. New corpus entries go
# to build-fuzz/corpus-NAME (the seeds in tests/fuzz/corpus/NAME are only
# read); a crash is saved as build-fuzz/crash-NAME-* and ends the script with
# an error. Copy a crash into tests/fuzz/corpus/NAME once fixed: ctest
# replays that folder in the normal build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
harnesses=(packed idx shape checkpoint dataset import recipe)
if [ $# -gt 1 ]; then
  shift
  for name in "$@"; do
    [[ " ${harnesses[*]} " == *" $name "* ]] || { echo "fuzz.sh: no harness '$name' (${harnesses[*]})" >&2; exit 2; }
  done
  harnesses=("$@")
fi

# clang and libFuzzer's runtime are needed only here, not by the normal build.
missing=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "fuzz: installing ${missing[*]}" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh" -j2 compress
build="$root/build-fuzz"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root/tests/fuzz/libfuzzer" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCOMPRESS_BUILD="$root/build" >/dev/null
fi
ninja -C "$build" -j2

export ASAN_OPTIONS="halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
for name in "${harnesses[@]}"; do
  mkdir -p "$build/corpus-$name"
  echo "fuzz: $name for ${seconds}s" >&2
  extra=()
  asan="$ASAN_OPTIONS"
  case "$name" in
    # LibTorch's zip reader leaks its state when it refuses an archive after
    # opening it (docs/reliability.md): leak checking would stop there.
    # (LibTorch's TorchScript compiler, which crashes on some crafted source,
    # runs in load_module's trial child first: such a crash is a refusal.)
    checkpoint|dataset|import) extra+=(-detect_leaks=0); asan="$asan:detect_leaks=0" ;;
  esac
  ASAN_OPTIONS="$asan" "$build/fuzz_$name" -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=8192 \
    -print_final_stats=1 "${extra[@]}" -artifact_prefix="$build/crash-$name-" \
    "$build/corpus-$name" "$root/tests/fuzz/corpus/$name" \
    >"$build/fuzz_$name.log" 2>&1 || { tail -40 "$build/fuzz_$name.log"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::new_units_added|^#[0-9]+: cov" "$build/fuzz_$name.log" | tail -3 |
    sed "s/^/fuzz: $name /" >&2
  if compgen -G "$build/crash-$name-*" >/dev/null; then
    echo "fuzz: $name: crashes kept for triage:" $build/crash-$name-* >&2
  fi
done
