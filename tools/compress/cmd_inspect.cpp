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
#include "format.h"
#include "input_shape.h"

namespace compress::cli {

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
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  if (args.count("graph")) std::cout << graph.to_string() << "\n";
  std::cout << format_profile_table(prof, path);
  return 0;
}

}  // namespace compress::cli
