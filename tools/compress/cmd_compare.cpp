// compress compare A B --input-shape 1,3,224,224 [--seed N] [--json]
// Runs two models on the same random input (eval mode) and reports how far
// their outputs are apart.
#include <iostream>

#include <ATen/ATen.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/import.h"
#include "input_shape.h"

namespace compress::cli {

namespace {
std::vector<at::Tensor> output_tensors(const c10::IValue& v) {
  std::vector<at::Tensor> out;
  if (v.isTensor()) out.push_back(v.toTensor());
  else if (v.isTuple())
    for (const auto& e : v.toTupleRef().elements()) {
      auto sub = output_tensors(e);
      out.insert(out.end(), sub.begin(), sub.end());
    }
  else if (v.isTensorList())
    for (const auto& t : v.toTensorVector()) out.push_back(t);
  return out;
}
}  // namespace

int cmd_compare(int argc, char** argv) {
  cxxopts::Options options("compress compare", "Run two models on the same random input and compare their outputs.");
  options.positional_help("A B");
  options.add_options()
      ("a", "first model", cxxopts::value<std::string>())
      ("b", "second model", cxxopts::value<std::string>())
      ("seed", "seed of the random input", cxxopts::value<uint64_t>()->default_value("0"))
      ("train", "run both in training mode (batch norm on batch statistics, dropout drawn from the same seed)")
      ("json", "print JSON")
      ("h,help", "show this help");
  add_input_options(options, "input shape, e.g. 1,3,224,224 (default: the shape model A recorded)");
  options.parse_positional({"a", "b"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!args.count("a") || !args.count("b")) bad_input("two model files are needed (usage: compress compare A B --input-shape ...)");
  const std::string pa = args["a"].as<std::string>(), pb = args["b"].as<std::string>();
  torch::jit::Module a = load_module(pa), b = load_module(pb);
  // A's graph says what its inputs are and which ids its embeddings take.
  Graph graph = import_module(a);
  apply_input_shapes(graph, args, pa, /*required=*/true);
  const bool train = args.count("train") != 0;
  a.train(train);
  b.train(train);
  const uint64_t seed = args["seed"].as<uint64_t>();
  std::vector<c10::IValue> x;
  std::string shapes;
  for (const at::Tensor& t : synthesize_inputs(graph, seed, parse_input_range(args))) {
    x.emplace_back(t);
    shapes += (shapes.empty() ? "" : ", ") + shape_to_string(Shape(t.sizes().begin(), t.sizes().end()));
  }
  torch::NoGradGuard no_grad;
  auto run = [&](torch::jit::Module& m, const std::string& path) {
    try {
      at::manual_seed(seed + 1);  // the same dropout masks for both
      return output_tensors(m.forward(x));
    } catch (const std::exception& e) {
      bad_input(path + ": input shape " + shapes + " does not fit the model: " + first_line_of(e));
    }
  };
  auto ya = run(a, pa), yb = run(b, pb);
  if (ya.size() != yb.size()) bad_input("the models return different numbers of tensors");
  double max_abs = 0, max_ref = 0;
  for (size_t i = 0; i < ya.size(); ++i) {
    if (ya[i].sizes() != yb[i].sizes()) bad_input("output " + std::to_string(i) + " differs in shape");
    max_abs = std::max(max_abs, (ya[i].to(at::kDouble) - yb[i].to(at::kDouble)).abs().max().item<double>());
    max_ref = std::max(max_ref, ya[i].to(at::kDouble).abs().max().item<double>());
  }
  double rel = max_ref > 0 ? max_abs / max_ref : max_abs;
  if (args.count("json")) {
    std::cout << nlohmann::json{{"max_abs_diff", max_abs}, {"max_rel_diff", rel}, {"identical", max_abs == 0.0}}.dump(2)
              << std::endl;
  } else {
    std::cout << "max abs diff " << max_abs << ", relative to max |output| " << rel
              << (max_abs == 0.0 ? " (identical)" : "") << std::endl;
  }
  return 0;
}

}  // namespace compress::cli
