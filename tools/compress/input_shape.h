#pragma once
// The --input-shape option shared by the commands that run a model.
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/graph.h"

namespace compress::cli {

// "1,3,224,224", several inputs separated by ';': "1,3,32,32;1,10".
inline std::vector<Shape> parse_input_shapes(const std::string& text) {
  std::vector<Shape> shapes;
  size_t start = 0;
  while (true) {
    size_t semi = text.find(';', start);
    shapes.push_back(parse_shape(text.substr(start, semi == std::string::npos ? std::string::npos : semi - start),
                                 "--input-shape"));
    if (semi == std::string::npos) return shapes;
    start = semi + 1;
  }
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
