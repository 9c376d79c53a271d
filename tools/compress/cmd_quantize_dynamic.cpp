// compress quantize --dynamic IN -o OUT [--input-shape S --input-dtype T] [--exclude NAME ...]
//   [--no-measure] [--threads N] [--report REPORT.json] [--json]
// Dynamic INT8 (quantization/dynamic.h): Linear, LSTM and GRU layers with INT8
// weights and activations quantized per call; no calibration data.
#include <cxxopts.hpp>

#include <ATen/Parallel.h>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "commands.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/quantization/dynamic.h"
#include "compress/threads.h"
#include "input_shape.h"
#include "parse_args.h"

namespace compress::cli {

bool wants_dynamic_quantization(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--dynamic") == 0 || std::strcmp(argv[i], "--dynamic=true") == 0) return true;
  return false;
}

int cmd_quantize_dynamic(int argc, char** argv) {
  cxxopts::Options options("compress quantize --dynamic",
                           "Dynamic INT8 quantization: Linear, LSTM and GRU layers (and the projections of fused "
                           "transformer encoder layers and attention modules) get INT8 weights, per output channel; their inputs are "
                           "quantized at run time, one scale per call, so no calibration data is needed. Layers "
                           "where INT8 is not faster than float at their shape stay float (measured).");
  options.positional_help("IN -o OUT");
  options.add_options()
      ("in", "input TorchScript model (float)", cxxopts::value<std::string>())
      ("o,output", "output model (written atomically; never the input)", cxxopts::value<std::string>())
      ("dynamic", "dynamic quantization (this mode)")
      ("exclude", "keep this module (and everything under it) or value in float (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("no-measure", "convert every layer that fits, without timing float against INT8")
      ("threads", "intra-op threads while measuring (the deployment's count)", cxxopts::value<int>()->default_value("1"))
      ("seed", "seed of the synthetic inputs the output error is measured on", cxxopts::value<uint64_t>()->default_value("0"))
      ("report", "write the report (JSON) here", cxxopts::value<std::string>())
      ("json", "print the report as JSON instead of the summary")
      ("q,quiet", "print nothing on success")
      ("h,help", "show this help");
  add_input_options(options, "model input shape (default: the shape a traced model recorded)");
  options.parse_positional({"in"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!args.count("in")) bad_input("no input model given (usage: compress quantize --dynamic IN -o OUT)");
  if (!args.count("output")) bad_input("no output file given (-o OUT)");
  const std::string in = args["in"].as<std::string>(), out = args["output"].as<std::string>();
  if (same_file(in, out)) bad_input("-o " + out + " would overwrite the input model");
  const int threads = args["threads"].as<int>();
  if (threads < 1) bad_input("--threads must be at least 1, got " + std::to_string(threads));
  compress::set_num_threads(threads);

  quant::DynamicOptions o;
  if (args.count("exclude")) o.exclude = args["exclude"].as<std::vector<std::string>>();
  o.measure = !args.count("no-measure");
  o.seed = args["seed"].as<uint64_t>();
  Graph graph = import_module(load_module(in));
  apply_input_shapes(graph, args, in, /*required=*/true);
  quant::DynamicReport report = quant::quantize_dynamic(graph, o);
  save_module(export_module(graph), out, /*protect=*/in);

  nlohmann::json j = report.to_json();
  if (args.count("report")) write_text_file(args["report"].as<std::string>(), j.dump(2) + "\n");
  if (args.count("json")) {
    std::cout << j.dump(2) << std::endl;
  } else if (!args.count("quiet")) {
    int int8 = 0;
    for (const auto& l : report.layers) int8 += l.precision == "int8";
    std::printf("wrote %s: %d of %zu Linear/LSTM/GRU layers in dynamic INT8\n", out.c_str(), int8,
                report.layers.size());
    for (const auto& l : report.layers) {
      std::printf("  %-5s %-32s %-8s %-14s", l.precision.c_str(), l.name.c_str(), l.kind.c_str(), l.shape.c_str());
      if (l.float_us > 0) std::printf("  float %8.1f us  int8 %8.1f us", l.float_us, l.int8_us);
      if (!l.reason.empty()) std::printf("  (%s)", l.reason.c_str());
      std::printf("\n");
    }
    std::printf("output SQNR against float: %.2f dB (max |diff| %.3g, synthetic inputs)\n", report.output_sqnr_db,
                report.output_max_abs_diff);
    std::printf("size: %lld -> %lld bytes\n", static_cast<long long>(report.bytes_before),
                static_cast<long long>(report.bytes_after));
  }
  return 0;
}

}  // namespace compress::cli
