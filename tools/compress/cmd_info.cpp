// compress info: what the kernels will run on this machine (ISA chosen from
// CPUID + XCR0 or forced by COMPRESS_ISA, threads), as text or --json.
#include <cstdio>
#include <cstdlib>

#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/cpu_block_cache.h"
#include "compress/error.h"
#include "compress/ops/ops.h"
#include "compress/threads.h"

namespace compress::cli {

int cmd_info(int argc, char** argv) {
  cxxopts::Options options("compress info", "Report the kernel ISA and threads this machine uses");
  options.add_options()("json", "print JSON")("h,help", "show this help");
  const auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", options.help().c_str());
    std::printf("The ISA is chosen from CPUID and XCR0; COMPRESS_ISA=ref|avx2|avx512vnni|amx forces one.\n");
    return 0;
  }
  ops::KernelReport r;
  try {
    r = ops::kernel_report();
  } catch (const std::exception& e) {
    // A forced COMPRESS_ISA the CPU cannot run is the user's input.
    bad_input(first_line_of(e));
  }
  const char* env = std::getenv("COMPRESS_ISA");
  if (args.count("json")) {
    nlohmann::json j;
    j["isa"] = r.active;
    j["best_isa"] = r.best;
    j["forced_by_env"] = env != nullptr && *env != '\0';
    for (const auto& [name, ok] : r.supported) j["supported"][name] = ok;
    j["threads"] = r.threads;
    j["blas_threads"] = blas_num_threads();  // 0: not OpenBLAS
    j["cpu_block_cache_mb"] = cpu_block_cache_limit_bytes() >> 20;  // 0: off
    j["cpu_block_cache_installed"] = cpu_block_cache_installed();  // false: the ops' outputs only
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("kernels: isa %s (best on this CPU: %s%s)\n", r.active.c_str(), r.best.c_str(),
              env && *env ? ", forced by COMPRESS_ISA" : "");
  for (const auto& [name, ok] : r.supported) std::printf("  %-11s %s\n", name.c_str(), ok ? "supported" : "not supported");
  std::printf("threads: %d (LibTorch intra-op pool, shared by the kernels)\n", r.threads);
  // Every command's --threads sets OpenBLAS's pool too (compress/threads.h);
  // this is its count before any command set it.
  if (const int blas = blas_num_threads(); blas > 0)
    std::printf("OpenBLAS threads: %d (LibTorch's float matmuls; each command's --threads sets it too)\n", blas);
  else
    std::printf("OpenBLAS: not loaded (LibTorch's BLAS has no thread pool of its own here)\n");
  if (const size_t limit = cpu_block_cache_limit_bytes(); limit > 0)
    std::printf("CPU block cache: up to %zu MiB of freed blocks kept for reuse, %s (COMPRESS_CPU_CACHE_MB)\n",
                limit >> 20,
                cpu_block_cache_installed() ? "for every CPU tensor"
                                            : "for the INT8 ops' outputs only (another allocator holds LibTorch's)");
  else
    std::printf("CPU block cache: off (COMPRESS_CPU_CACHE_MB=0)\n");
  return 0;
}

}  // namespace compress::cli
