#pragma once
// The --input-shape option shared by the commands that run a model.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/graph.h"

namespace compress::cli {

// Physical memory of this machine in bytes (0 if unknown).
inline double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

// "1,3,224,224", several inputs separated by ';': "1,3,32,32;1,10".
// Inputs that could not even be allocated (more than half of the machine's
// memory, as 4-byte values, before any activation) are refused here with one
// line, rather than by the kernel's out-of-memory killer later.
inline std::vector<Shape> parse_input_shapes(const std::string& text) {
  std::vector<Shape> shapes;
  size_t start = 0;
  double bytes = 0;
  while (true) {
    size_t semi = text.find(';', start);
    shapes.push_back(parse_shape(text.substr(start, semi == std::string::npos ? std::string::npos : semi - start),
                                 "--input-shape"));
    double elements = 1;
    for (int64_t d : shapes.back()) elements *= static_cast<double>(d);
    bytes += 4 * elements;
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  const double memory = physical_memory_bytes();
  if (memory > 0 && bytes > memory / 2) {
    char line[160];
    std::snprintf(line, sizeof(line), "the input alone would take %.1f GB, more than half of this machine's %.1f GB",
                  bytes / 1e9, memory / 1e9);
    bad_input("--input-shape " + text + ": " + line);
  }
  return shapes;
}

// Sets the graph's example inputs from --input-shape when given. Otherwise,
// when `required`, the model must record its own (a model this toolkit
// wrote does): Error(BadInput) naming `model_path` if it does not.
inline void apply_input_shapes(Graph& graph, const cxxopts::ParseResult& args, const std::string& model_path,
                               bool required, at::ScalarType dtype = at::kFloat) {
  if (args.count("input-shape")) {
    std::vector<InputSpec> specs;
    for (Shape& s : parse_input_shapes(args["input-shape"].as<std::string>())) specs.push_back(InputSpec{std::move(s), dtype});
    graph.set_example_inputs(std::move(specs));
  } else if (required && graph.example_inputs().empty() && !graph.inputs().empty()) {
    bad_input("--input-shape is required: " + model_path +
              " does not record its input shape (e.g. --input-shape 1,3,224,224)");
  }
}

}  // namespace compress::cli
