#!/usr/bin/env bash
# Sparse INT8 per dense ISA (docs/quantization.md, "Sparse INT8"): the 1x4
# kernel table (dense AMX / VNNI / AVX2 and the VNNI and AVX2 sparse kernels,
# interleaved in one process), then the 90% 1x4 MLP end to end under
# COMPRESS_ISA=avx512vnni, amx and avx2: quantized with --sparse auto and
# --sparse off, top-1 of each on the 10,000 test images, and the two INT8
# models and the float one timed interleaved (bench/sparse_vs_dense.py, which
# also checks the sparse and dense INT8 outputs are identical).
#   MODEL=out/sparse/mlp.b90.pt bash bench/sparse_isa.sh   (needs a build and the pruned MLP:
#   see docs/quantization.md for the three commands that make it)
# SECTION=sparse_conv times the 3x3 convolutions of the zoo cnn / resnet
# instead (sparse im2col + 1x4 kernel against each dense convolution), for
# a model whose time is in k x k convolutions:
#   SECTION=sparse_conv MODEL=cnn.b80.pt bash bench/sparse_isa.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
model="${MODEL:?MODEL=path to the 90% 1x4 MLP (compress sparsify output)}"
reps="${REPS:-50}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) vCPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bin/compress_bench_int8" --threads 1 --reps "${KERNEL_REPS:-7}" --only "${SECTION:-sparse_isa}"
for isa in avx512vnni amx avx2; do
  echo
  echo "## COMPRESS_ISA=$isa"
  export COMPRESS_ISA=$isa
  "$build/bin/compress" quantize "$model" -o "$work/sparse.pt" --input-shape 32,1,28,28 --calib fashion-mnist \
      --threads 1 --report "$work/q.json" > /dev/null
  "$build/bin/compress" quantize "$model" -o "$work/dense.pt" --input-shape 32,1,28,28 --calib fashion-mnist \
      --threads 1 --sparse off > /dev/null
  jq -r '.layers[] | select(.weight_format != null) | "\(.name): \(.weight_format): \(.format_reason)"' "$work/q.json"
  echo "top-1 sparse INT8: $("$build/bin/compress" eval "$work/sparse.pt" --data fashion-mnist | grep -o "top-1 [0-9.]*%")"
  echo "top-1 dense INT8:  $("$build/bin/compress" eval "$work/dense.pt" --data fashion-mnist | grep -o "top-1 [0-9.]*%")"
  /usr/bin/python3 "$root/bench/sparse_vs_dense.py" --ops "$build/src/ops/libcompress_ops.so" --shape 32,1,28,28 \
      --threads 1 --reps "$reps" dense_int8="$work/dense.pt" sparse_int8="$work/sparse.pt" float_sparse="$model"
done
