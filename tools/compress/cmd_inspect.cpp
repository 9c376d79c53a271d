// compress inspect MODEL --input-shape 1,3,224,224 [--json] [--graph]
#include <cstdio>
#include <iostream>
#include <sstream>

#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/import.h"
#include "compress/pruning/groups.h"
#include "compress/pruning/sparsity.h"
#include "format.h"
#include "input_shape.h"

namespace compress::cli {

namespace {

// Each conv/linear layer's weight sparsity and storage (float, or the INT8
// packing: dense / sparse_1x4 / sparse_2_4); shown when some weight is zero
// or some layer is INT8.
std::string storage_table(const std::vector<sparsity::LayerStorage>& layers) {
  bool interesting = false;
  for (const auto& l : layers) interesting = interesting || l.zeros > 0 || l.format != "float";
  if (!interesting) return "";
  std::ostringstream os;
  os << "weights:\n";
  char line[256];
  for (const auto& l : layers) {
    std::string extra;
    if (l.block_sparsity >= 0) {
      char b[64];
      std::snprintf(b, sizeof b, "  1x4 blocks %6.2f%% empty%s", 100.0 * l.block_sparsity, l.two_of_four ? ", 2:4" : "");
      extra = b;
    }
    std::snprintf(line, sizeof line, "  %-32s %-10s %7.2f%% zero of %s%s\n", l.name.c_str(), l.format.c_str(),
                  100.0 * l.sparsity, with_commas(l.numel).c_str(), extra.c_str());
    os << line;
  }
  return os.str();
}

nlohmann::json storage_json(const std::vector<sparsity::LayerStorage>& layers) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json e = {{"name", l.name}, {"format", l.format}, {"numel", l.numel}, {"zeros", l.zeros},
                        {"sparsity", l.sparsity}};
    if (l.block_sparsity >= 0) {
      e["block_1x4_sparsity"] = l.block_sparsity;
      e["two_of_four"] = l.two_of_four;
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  cxxopts::Options options("compress inspect",
                           "Print a model's graph with output shapes, parameters and MACs per node.");
  options.positional_help("MODEL");
  options.add_options()
      ("model", "TorchScript model file", cxxopts::value<std::string>())
      ("json", "print a JSON document instead of a table")
      ("groups", "print the pruning dependency groups (channels that shrink together) instead")
      ("graph", "also print the imported graph, one node a line, values by name (the names options and recipes use)")
      ("h,help", "show this help");
  add_input_options(options);
  options.parse_positional({"model"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!args.count("model")) bad_input("no model file given (usage: compress inspect MODEL --input-shape 1,3,224,224)");
  const std::string path = args["model"].as<std::string>();
  torch::jit::Module module = load_module(path);
  Graph graph = import_module(module);
  apply_input_shapes(graph, args, path, /*required=*/true);
  ModelProfile prof = profile_model(graph);
  if (args.count("groups")) {
    std::cout << pruning::describe_groups(pruning::analyze_groups(graph));
    return 0;
  }

  if (args.count("json")) {
    nlohmann::json j = profile_to_json(prof, path);
    j["weights"] = storage_json(sparsity::describe_layers(graph));
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  if (args.count("graph")) std::cout << graph.to_string() << "\n";
  std::cout << format_profile_table(prof, path);
  std::cout << storage_table(sparsity::describe_layers(graph));
  return 0;
}

}  // namespace compress::cli
