#pragma once
// The options that describe a model's inputs, shared by every command that
// runs a model: --input-shape (several inputs: repeat it, or separate shapes
// with ';'), --input-dtype (one for all inputs or one per input) and
// --input-range (the ids synthesised integer inputs are drawn from).
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "compress/analysis/inputs.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/graph.h"

namespace compress::cli {

// Physical memory of this machine in bytes (0 if unknown).
inline double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

// Adds --input-shape, --input-dtype and --input-range to a command's options.
inline void add_input_options(cxxopts::Options& options,
                              const std::string& shape_help = "input shape, e.g. 1,3,224,224 (default: the shape a "
                                                              "traced model recorded)") {
  options.add_options()
      ("input-shape", shape_help + "; several inputs: repeat the option or separate shapes with ';' ('1,3,32,32;1,10')",
       cxxopts::value<std::string>())
      ("input-dtype", "input dtype (float32, int64, ...): one for every input, or one per input (repeat the option or "
       "separate with ','); default float32, or what a traced model recorded", cxxopts::value<std::string>())
      ("input-range", "LO,HI: synthesised integer inputs take values LO..HI-1 (default: the rows of the embedding "
       "they index)", cxxopts::value<std::string>());
}

// Every occurrence of a string option, in order, each split at `separator`.
inline std::vector<std::string> option_values(const cxxopts::ParseResult& args, const std::string& name,
                                              char separator) {
  std::vector<std::string> out;
  for (const auto& kv : args.arguments()) {
    if (kv.key() != name) continue;
    const std::string& text = kv.value();
    size_t start = 0;
    while (true) {
      size_t end = text.find(separator, start);
      out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return out;
}

// The shapes of --input-shape. Inputs that could not even be allocated (more
// than half of the machine's memory, as 4-byte values, before any
// activation) are refused here with one line, rather than by the kernel's
// out-of-memory killer later.
inline std::vector<Shape> parse_input_shapes(const cxxopts::ParseResult& args) {
  std::vector<Shape> shapes;
  double bytes = 0;
  for (const std::string& text : option_values(args, "input-shape", ';')) {
    shapes.push_back(parse_shape(text, "--input-shape"));
    double elements = 1;
    for (int64_t d : shapes.back()) elements *= static_cast<double>(d);
    bytes += 4 * elements;
  }
  const double memory = physical_memory_bytes();
  if (memory > 0 && bytes > memory / 2) {
    char line[160];
    std::snprintf(line, sizeof(line), "the input alone would take %.1f GB, more than half of this machine's %.1f GB",
                  bytes / 1e9, memory / 1e9);
    bad_input(std::string("--input-shape: ") + line);
  }
  return shapes;
}

// The dtypes of --input-dtype for `count` inputs (one given: all of them);
// empty when the option is absent. Error(BadInput) for a word that is no
// dtype or a count that fits neither rule.
inline std::vector<at::ScalarType> parse_input_dtypes(const cxxopts::ParseResult& args, size_t count) {
  std::vector<at::ScalarType> dtypes;
  for (const std::string& text : option_values(args, "input-dtype", ','))
    dtypes.push_back(parse_dtype(text, "--input-dtype"));
  if (dtypes.size() == 1) dtypes.assign(count, dtypes[0]);
  if (!dtypes.empty() && dtypes.size() != count)
    bad_input("--input-dtype: " + std::to_string(dtypes.size()) + " dtypes for " + std::to_string(count) +
              " inputs (give one for all inputs or one per input)");
  return dtypes;
}

// --input-range LO,HI, if given.
inline std::optional<IntRange> parse_input_range(const cxxopts::ParseResult& args) {
  if (!args.count("input-range")) return std::nullopt;
  const std::string text = args["input-range"].as<std::string>();
  const size_t comma = text.find(',');
  IntRange r;
  try {
    size_t used_lo = 0, used_hi = 0;
    if (comma == std::string::npos) throw std::invalid_argument("no comma");
    const std::string lo = text.substr(0, comma), hi = text.substr(comma + 1);
    r.lo = std::stoll(lo, &used_lo);
    r.hi = std::stoll(hi, &used_hi);
    if (used_lo != lo.size() || used_hi != hi.size()) throw std::invalid_argument("trailing text");
  } catch (const std::exception&) {
    bad_input("--input-range: '" + text + "' is not LO,HI (two integers, e.g. 0,100)");
  }
  if (r.lo < 0 || r.hi <= r.lo) bad_input("--input-range: '" + text + "' must satisfy 0 <= LO < HI");
  return r;
}

// Sets the graph's example inputs from --input-shape / --input-dtype when
// given (dtypes alone retype the shapes the model recorded). Otherwise, when
// `required`, the model must record its own (a model this toolkit wrote
// does): Error(BadInput) naming `model_path` if it does not. A given
// --input-range is checked against the embeddings the inputs index.
inline void apply_input_shapes(Graph& graph, const cxxopts::ParseResult& args, const std::string& model_path,
                               bool required, at::ScalarType dtype = at::kFloat) {
  std::vector<InputSpec> specs;
  if (args.count("input-shape")) {
    for (Shape& s : parse_input_shapes(args)) specs.push_back(InputSpec{std::move(s), dtype});
  } else if (required && graph.example_inputs().empty() && !graph.inputs().empty()) {
    bad_input("--input-shape is required: " + model_path +
              " does not record its input shape (e.g. --input-shape 1,3,224,224)");
  } else {
    specs = graph.example_inputs();
  }
  const std::vector<at::ScalarType> dtypes = parse_input_dtypes(args, specs.size());
  for (size_t i = 0; i < dtypes.size(); ++i) specs[i].dtype = dtypes[i];
  if (args.count("input-shape") || !dtypes.empty()) graph.set_example_inputs(std::move(specs));
  if (const auto range = parse_input_range(args))
    for (size_t i = 0; i < graph.example_inputs().size(); ++i)
      if (at::isIntegralType(graph.example_inputs()[i].dtype, false)) integer_input_range(graph, i, range);
}

}  // namespace compress::cli
