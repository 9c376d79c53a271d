// compress quantize IN -o OUT --input-shape N,C,H,W [--input-dtype T] [--calib fashion-mnist|FILE|random]
//   [--calib-batches N] [--method minmax|percentile|entropy|mse] [--exclude NAME ...] [--activations auto|u8|u7]
//   [--report REPORT.json]
//   [--sensitivity] [--data fashion-mnist|FILE --holdout N] [--max-drop POINTS]
#include <ATen/Parallel.h>
#include <cxxopts.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "parse_args.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/quantization/quantize.h"
#include "compress/quantization/sensitivity.h"
#include "compress/quantization/sparse_format.h"
#include "compress/threads.h"
#include "data_option.h"
#include "input_shape.h"

namespace compress::cli {

namespace {

std::string shape_text(c10::IntArrayRef s) {
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + std::to_string(s[i]);
  return t;
}

// The one input a tensor data set can feed (its samples are one tensor each).
const InputSpec& single_input(const Graph& graph, const std::string& option, const std::string& source) {
  if (graph.example_inputs().size() != 1)
    bad_input(option + " " + source + ": a tensor data set holds one input per sample, but the model takes " +
              std::to_string(graph.example_inputs().size()) + " inputs (use --calib random, which synthesises each)");
  return graph.example_inputs()[0];
}

// Calibration batches of the model's example inputs (N = batch size):
// synthesised (seeded; integer inputs within the embedding they index), or
// consecutive slices of a dataset whose samples must have the model's shape
// (converted to the input's dtype).
quant::CalibrationData calibration_data(const std::string& calib, const std::string& data_dir, const Graph& graph,
                                        const std::optional<IntRange>& range, int64_t batches, uint64_t seed) {
  if (batches < 1) bad_input("--calib-batches must be at least 1, got " + std::to_string(batches));
  if (calib == "random") {
    const InputSynthesizer synthesize(graph, range);
    const uint64_t stride = std::max<size_t>(1, graph.example_inputs().size());
    return {batches, quant::CalibrationData::Inputs([synthesize, seed, stride](int64_t i) {
              return synthesize(seed + static_cast<uint64_t>(i) * stride);
            })};
  }
  const InputSpec& input = single_input(graph, "--calib", calib);
  const Shape& shape = input.shape;
  const int64_t n = shape.at(0);
  data::TensorDataset ds = calib == "fashion-mnist" ? data::load_fashion_mnist("train", data_dir)
                                                    : data::load_tensor_dataset(calib);
  if (ds.size() == 0 || !ds.inputs.defined() || ds.inputs.numel() == 0)
    bad_input("--calib " + calib + ": the calibration set is empty");
  c10::IntArrayRef sample = ds.inputs.sizes().slice(1);
  c10::IntArrayRef want = c10::IntArrayRef(shape).slice(1);
  if (sample != want)
    bad_input("--calib " + calib + ": its samples are " + shape_text(sample) + " but the model's input is " +
              shape_text(want) + " (--input-shape " + shape_text(shape) + ")");
  at::Tensor inputs = ds.inputs.to(input.dtype);
  int64_t available = (ds.size() + n - 1) / n;
  return {std::min(batches, available), [inputs, n](int64_t i) {
            int64_t start = i * n;
            return inputs.narrow(0, start, std::min(n, inputs.size(0) - start));
          }};
}

// The labelled held-out split for accuracy: the LAST `n` samples of the
// training split (fashion-mnist) or of the file. The calibration batches of
// --calib fashion-mnist come from the start of the same split, so the two
// do not overlap unless calibration reads more than 60000 - n images.
data::TensorDataset held_out_data(const std::string& data, const std::string& data_dir, int64_t n, const Graph& graph) {
  if (n < 1) bad_input("--holdout must be at least 1, got " + std::to_string(n));
  const InputSpec& input = single_input(graph, "--data", data);
  const Shape& shape = input.shape;
  if (data != "fashion-mnist") require_input_file(data);
  data::TensorDataset ds = load_data_option(data, "train", data_dir);
  if (ds.size() == 0) bad_input("--data " + data + ": the data set is empty");
  c10::IntArrayRef sample = ds.inputs.sizes().slice(1), want = c10::IntArrayRef(shape).slice(1);
  if (sample != want)
    bad_input("--data " + data + ": its samples are " + shape_text(sample) + " but the model's input is " +
              shape_text(want));
  const int64_t k = std::min(n, ds.size());
  return {ds.inputs.narrow(0, ds.size() - k, k).to(input.dtype), ds.labels.narrow(0, ds.size() - k, k),
          ds.num_classes, ds.name};
}

void print_sensitivity(const quant::SensitivityReport& s) {
  const bool acc = s.eval_samples > 0;
  std::printf("sensitivity (one layer in INT8 at a time%s):\n",
              acc ? (", top-1 on " + std::to_string(s.eval_samples) + " held-out samples").c_str() : "");
  if (acc) std::printf("  float top-1 %.2f%%, all layers INT8 %.2f%%\n", s.float_top1, s.int8_top1);
  for (const auto& l : s.layers) {
    std::printf("  %-24s output SQNR %6.2f dB", l.name.c_str(), l.sqnr_db);
    if (acc) std::printf("  top-1 %.2f%% (drop %+.2f)", l.top1, l.top1_drop);
    std::printf("  [%s]\n", l.ops.c_str());
  }
}

void print_fallback(const quant::FallbackReport& f) {
  std::string kept;
  for (const auto& k : f.kept_float) kept += (kept.empty() ? "" : ", ") + k;
  std::printf("fallback (max drop %.2f points): kept in float: %s; held-out top-1 %.2f%% (float %.2f%%, drop %.2f)\n",
              f.max_drop, kept.empty() ? "none" : kept.c_str(), f.top1, f.float_top1, f.top1_drop);
}

// Sparse INT8: each layer with zero weights, the packing chosen and why.
void print_weight_formats(const quant::QuantizeReport& r) {
  for (const auto& l : r.layers)
    if (l.precision == "int8" && (l.weight_sparsity > 0 || l.weight_format != "dense"))
      std::printf("  %s: %s (%.1f%% zero weights): %s\n", l.name.c_str(), l.weight_format.c_str(),
                  100.0 * l.weight_sparsity, l.format_reason.c_str());
}

void print_summary(const quant::QuantizeReport& r, const std::string& out) {
  int int8 = 0;
  for (const auto& l : r.layers) int8 += l.precision == "int8";
  std::printf("wrote %s: %d of %zu conv/linear layers in INT8 (%s calibration, %lld batches)\n", out.c_str(), int8,
              r.layers.size(), r.method.c_str(), static_cast<long long>(r.calibration_batches));
  std::printf("activations: %s (%s)\n", r.activations.name.c_str(), r.activations.reason.c_str());
  std::printf("output SQNR against float: %.2f dB\n", r.output_sqnr_db);
  std::printf("size: %lld -> %lld bytes (%.3fx)\n", static_cast<long long>(r.bytes_before),
              static_cast<long long>(r.bytes_after),
              r.bytes_before ? static_cast<double>(r.bytes_after) / static_cast<double>(r.bytes_before) : 0.0);
  for (const auto& l : r.layers)
    if (l.precision != "int8") std::printf("  float: %s (%s): %s\n", l.name.c_str(), l.ops.c_str(), l.reason.c_str());
  print_weight_formats(r);
  std::fflush(stdout);
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  if (wants_dynamic_quantization(argc, argv)) return cmd_quantize_dynamic(argc, argv);
  cxxopts::Options options("compress quantize",
                           "Post-training static quantization: fold batch norms, fuse activations and residual adds "
                           "into the INT8 kernels' epilogue, calibrate activation ranges on a few batches, and write "
                           "a model of compress::conv2d_int8 / linear_int8 ops (runs with libcompress_ops only).");
  options.positional_help("IN -o OUT --input-shape N,C,H,W");
  add_input_options(options, "model input, e.g. N,C,H,W; N is the calibration batch size (default: the shape a "
                             "model written by this toolkit recorded)");
  options.add_options()
      ("in", "input TorchScript model (float)", cxxopts::value<std::string>())
      ("o,output", "output INT8 model (written atomically; never the input)", cxxopts::value<std::string>())
      ("calib", "calibration data: fashion-mnist (train split), a tensor dataset file (.pt; one input per sample) "
       "or random (every input synthesised: normal floats, integers within --input-range or the embedding's rows)",
       cxxopts::value<std::string>()->default_value("random"))
      ("calib-batches", "number of calibration batches", cxxopts::value<int64_t>()->default_value("8"))
      ("method", "activation range calibration: minmax, percentile, entropy or mse",
       cxxopts::value<std::string>()->default_value("percentile"))
      ("percentile", "percentile kept by --method percentile", cxxopts::value<double>()->default_value("99.99"))
      ("exclude", "keep this module (and everything under it) or value in float (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("report", "write the quantization report (JSON) here", cxxopts::value<std::string>())
      ("sensitivity", "quantize one layer at a time and report each one's effect (SQNR; top-1 with --data)")
      ("data", "labelled data for accuracy: fashion-mnist or a tensor dataset file (.pt); its held-out split is the "
       "last --holdout samples of the training split (never the test set)", cxxopts::value<std::string>())
      ("holdout", "size of the held-out split of --data", cxxopts::value<int64_t>()->default_value("5000"))
      ("max-drop", "keep the most sensitive layers in float until the held-out top-1 drop is at most this many "
       "points (needs --data)", cxxopts::value<double>())
      ("data-dir", "folder holding the Fashion-MNIST IDX files", cxxopts::value<std::string>()->default_value(""))
      ("seed", "seed of --calib random", cxxopts::value<uint64_t>()->default_value("0"))
      ("sparse", "sparse INT8 weights: auto (per layer with zero weights, time dense against the sparse kernels at "
       "--input-shape's batch and keep the fastest), off, 1x4 or 2:4 (forced where the layer allows)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("activations", "activation codes: auto (7-bit where the kernels are AVX2, whose 7-bit layout is faster; "
       "8-bit on AVX-512 VNNI, AMX and the reference kernels), u8 (0..255) or u7 (0..127)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("threads", "intra-op threads (the sparse/dense timing uses them; 0 = LibTorch's default)",
       cxxopts::value<int>()->default_value("0"))
      ("json", "print the report as JSON instead of the summary")
      ("q,quiet", "print nothing on success")
      ("h,help", "show this help");
  options.parse_positional({"in"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!args.count("in")) bad_input("no input model given (usage: compress quantize IN -o OUT --input-shape N,C,H,W)");
  if (!args.count("output")) bad_input("no output file given (-o OUT)");
  const std::string in = args["in"].as<std::string>(), out = args["output"].as<std::string>();
  if (same_file(in, out))
    bad_input("-o " + out + " would overwrite the input model");
  quant::QuantizeOptions qo;
  qo.method = quant::parse_method(args["method"].as<std::string>());
  qo.percentile = args["percentile"].as<double>();
  if (args.count("exclude")) qo.exclude = args["exclude"].as<std::vector<std::string>>();
  qo.sparse = args["sparse"].as<std::string>();
  quant::check_sparse_mode(qo.sparse);
  qo.activations = args["activations"].as<std::string>();
  (void)quant::resolve_activations(qo.activations);  // a bad value is refused before any work
  if (args["threads"].as<int>() < 0) bad_input("--threads must not be negative");
  if (args["threads"].as<int>() > 0) compress::set_num_threads(args["threads"].as<int>());
  if (args.count("max-drop") && !args.count("data"))
    bad_input("--max-drop needs --data (labelled data whose held-out split measures the top-1 drop)");
  if (args.count("max-drop") && !(args["max-drop"].as<double>() >= 0))
    bad_input("--max-drop must be a non-negative number of points");

  Graph graph = import_module(load_module(in));
  apply_input_shapes(graph, args, in, /*required=*/true);
  graph.infer_shapes();  // an input shape that does not fit is named here, before any work
  quant::CalibrationData data =
      calibration_data(args["calib"].as<std::string>(), args["data-dir"].as<std::string>(), graph,
                       parse_input_range(args), args["calib-batches"].as<int64_t>(), args["seed"].as<uint64_t>());
  std::optional<data::TensorDataset> held_out;
  if (args.count("data"))
    held_out = held_out_data(args["data"].as<std::string>(), args["data-dir"].as<std::string>(),
                             args["holdout"].as<int64_t>(), graph);
  std::optional<quant::SensitivityReport> sensitivity;
  std::optional<quant::FallbackReport> fallback;
  quant::QuantizeReport report;
  if (args.count("max-drop")) {
    fallback.emplace();
    report = quant::quantize_with_fallback(graph, data, qo, *held_out, args["max-drop"].as<double>(), *fallback);
    sensitivity = fallback->sensitivity;
  } else {
    if (args.count("sensitivity"))
      sensitivity = quant::analyze_sensitivity(graph, data, qo, held_out ? &*held_out : nullptr);
    report = quant::quantize_static(graph, data, qo);
  }

  save_module(export_module(graph), out, /*protect=*/in);
  nlohmann::json j = report.to_json();
  if (sensitivity) j["sensitivity"] = sensitivity->to_json();
  if (fallback) j["fallback"] = fallback->to_json();
  if (held_out)
    j["held_out"] = "the last " + std::to_string(held_out->size()) + " samples of " + args["data"].as<std::string>() +
                    " (training split)";
  j["size"]["file_bytes_in"] = std::filesystem::file_size(in);
  j["size"]["file_bytes_out"] = std::filesystem::file_size(out);
  if (args.count("report")) write_text_file(args["report"].as<std::string>(), j.dump(2) + "\n");
  if (args.count("json")) {
    std::cout << j.dump(2) << std::endl;
  } else if (!args.count("quiet")) {
    print_summary(report, out);
    if (sensitivity) print_sensitivity(*sensitivity);
    if (fallback) print_fallback(*fallback);
  }
  return 0;
}

}  // namespace compress::cli
