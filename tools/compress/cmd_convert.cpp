// compress convert IN -o OUT [--fold-bn] [--strip-dropout]
#include <iostream>

#include <cxxopts.hpp>

#include "commands.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/passes/graph_passes.h"

namespace compress::cli {

int cmd_convert(int argc, char** argv) {
  cxxopts::Options options("compress convert",
                           "Import a TorchScript model and export it again, optionally folding batch norms "
                           "and removing dropout. Without options the output computes exactly what the input does.");
  options.positional_help("IN -o OUT");
  options.add_options()
      ("in", "input TorchScript model", cxxopts::value<std::string>())
      ("o,output", "output model file (written atomically; never the input)", cxxopts::value<std::string>())
      ("fold-bn", "fold batch norms into the preceding convolution or linear layer")
      ("strip-dropout", "remove dropout (the identity in eval mode)")
      ("q,quiet", "print nothing on success")
      ("h,help", "show this help");
  options.parse_positional({"in"});
  auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!args.count("in")) bad_input("no input model given (usage: compress convert IN -o OUT)");
  if (!args.count("output")) bad_input("no output file given (-o OUT)");
  const std::string in = args["in"].as<std::string>();
  const std::string out = args["output"].as<std::string>();

  torch::jit::Module module = load_module(in);
  Graph graph = import_module(module);
  int folded = args.count("fold-bn") ? fold_batch_norm(graph) : 0;
  int stripped = args.count("strip-dropout") ? strip_dropout(graph) : 0;
  torch::jit::Module exported = export_module(graph);
  save_module(exported, out, /*protect=*/in);
  if (!args.count("quiet")) {
    std::cout << "wrote " << out << ": " << graph.nodes.size() << " nodes";
    if (args.count("fold-bn")) std::cout << ", " << folded << " batch norm(s) folded";
    if (args.count("strip-dropout")) std::cout << ", " << stripped << " dropout(s) removed";
    std::cout << std::endl;
  }
  return 0;
}

}  // namespace compress::cli
