# The kernels' source files and their per-file ISA flags, in one place for
# the two builds that compile them: compress_kernels (src/kernels) and the
# instrumented copy of the libFuzzer build (tests/fuzz/libfuzzer), which
# otherwise drifts from this list (it once lacked a file and a flag).
#   compress_kernel_sources(VAR DIR): VAR = the files under DIR (this folder,
#   wherever the caller has it), each ISA unit given its flags in the
#   caller's directory (source properties are per directory).
function(compress_kernel_sources out dir)
  set(plain error.cpp isa.cpp parallel.cpp packed.cpp gemm.cpp conv.cpp pool.cpp ref.cpp rnn_cell.cpp)
  set(avx2 gemm_avx2.cpp gemm_avx2_u8.cpp sparse_avx2.cpp conv_avx2.cpp quantize_avx2.cpp rnn_cell_avx2.cpp)
  set(avx512vnni gemm_avx512vnni.cpp sparse_avx512vnni.cpp depthwise_avx512vnni.cpp)
  set(amx gemm_amx.cpp)
  list(TRANSFORM plain PREPEND ${dir}/)
  list(TRANSFORM avx2 PREPEND ${dir}/)
  list(TRANSFORM avx512vnni PREPEND ${dir}/)
  list(TRANSFORM amx PREPEND ${dir}/)
  # GCC's maybe-uninitialized misfires on the AVX-512 intrinsics' masked
  # loads; clang has no such warning.
  set(quiet $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  set(vnni_flags -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma)
  set_source_files_properties(${avx2} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
  set_source_files_properties(${avx512vnni} PROPERTIES COMPILE_OPTIONS "${vnni_flags};${quiet}")
  set_source_files_properties(${amx} PROPERTIES COMPILE_OPTIONS "${vnni_flags};-mavx512vbmi;-mamx-tile;-mamx-int8;${quiet}")
  set(${out} ${plain} ${avx2} ${avx512vnni} ${amx} PARENT_SCOPE)
endfunction()
