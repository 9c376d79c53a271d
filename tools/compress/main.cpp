// compress: the command line. Thin by design: parse, call the library, print.
// Exit codes: 0 ok, 1 the job failed, 2 bad input. Errors are one line on
// stderr, never an abort or a LibTorch backtrace.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <cxxopts.hpp>

#include "commands.h"
#include "compress/cpu_block_cache.h"
#include "compress/error.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

// The subcommands, in the order `compress --help` lists them.
const Command kCommands[] = {
    {"inspect", compress::cli::cmd_inspect, "print a model's graph: shapes, parameters, MACs"},
    {"convert", compress::cli::cmd_convert, "import, run graph passes, re-export (--fold-bn, --pass NAME)"},
    {"prune", compress::cli::cmd_prune, "structured pruning: remove channels under a MACs or ratio budget"},
    {"sparsify", compress::cli::cmd_sparsify, "fine-grained sparsity: unstructured, 1x4 or N:M masks, one-shot or AGP fine-tuning"},
    {"quantize", compress::cli::cmd_quantize, "post-training INT8 quantization (calibrate, fuse, convert to compress ops)"},
    {"qat", compress::cli::cmd_qat, "quantization-aware training (LSQ or STE), then the same INT8 conversion"},
    {"compare", compress::cli::cmd_compare, "run two models on the same input and compare outputs"},
    {"info", compress::cli::cmd_info, "report the kernel ISA (CPUID/XCR0 or COMPRESS_ISA) and threads"},
    {"train", compress::cli::cmd_train, "train a baseline model (or fine-tune one) on a dataset"},
    {"distill", compress::cli::cmd_distill, "knowledge distillation: train a student under a frozen teacher (KD, FitNets, AT)"},
    {"pdd", compress::cli::cmd_pdd, "pruning during distillation: learned channel gates under a MACs budget, then removal"},
    {"pqk", compress::cli::cmd_pqk, "PQK: pruning with QAT, then KD from the unpruned network restored; INT8 model"},
    {"amc", compress::cli::cmd_amc, "AMC: a DDPG agent learns per-group pruning ratios under a MACs or latency budget"},
    {"eval", compress::cli::cmd_eval, "test accuracy, confusion matrix and latency of a model"},
    {"run", compress::cli::cmd_run, "run a pipeline recipe (JSON): train, prune, distill, quantize, ... with a report"},
    {"report", compress::cli::cmd_report, "render a pipeline report as an HTML page with charts or a Markdown table"},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: compress <command> [options]   (compress <command> --help)\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      // Before any tensor: evaluation and training loops reuse their blocks
      // instead of page-faulting them in again on every pass.
      compress::install_cpu_block_cache_from_env();
      // The command sees its own name as argv[0], as cxxopts expects.
      return c.run(argc - 1, argv + 1);
    } catch (const compress::Error& e) {
      if (!e.said_elsewhere()) std::fprintf(stderr, "compress %s: error: %s\n", c.name, e.what());
      return e.kind() == compress::ErrorKind::BadInput ? 2 : 1;
    } catch (const cxxopts::exceptions::exception& e) {
      std::fprintf(stderr, "compress %s: error: %s (see compress %s --help)\n", c.name, e.what(), c.name);
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "compress %s: error: %s\n", c.name, compress::first_line_of(e).c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "compress: unknown command '%s' (compress --help lists the commands)\n", name.c_str());
  return 2;
}
