# The custom ops' source files, in one place for compress_ops (src/ops) and
# the instrumented copy of the libFuzzer build (tests/fuzz/libfuzzer).
#   compress_ops_sources(VAR PARALLEL_VAR DIR): VAR = the files under DIR;
#   PARALLEL_VAR = those of them that call at::parallel_for (src/ops gives
#   them OpenMP; the fuzz build runs them serially).
function(compress_ops_sources out parallel_out dir)
  set(files ops_registration.cpp ops_impl.cpp dynamic_impl.cpp script_resolver.cpp cpu_block_cache.cpp stored_weights.cpp)
  set(parallel ops_impl.cpp dynamic_impl.cpp)
  list(TRANSFORM files PREPEND ${dir}/)
  list(TRANSFORM parallel PREPEND ${dir}/)
  set(${out} ${files} PARENT_SCOPE)
  set(${parallel_out} ${parallel} PARENT_SCOPE)
endfunction()
