// compress convert IN -o OUT [--fold-bn] [--strip-dropout] [--pass NAME[=JSON] ...] [--list-passes]
#include <iostream>

#include <cxxopts.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/passes/pass.h"
#include "input_shape.h"

namespace compress::cli {

namespace {

// "fold_batch_norm" or 'fold_batch_norm={"linear": false}'.
std::pair<std::string, nlohmann::json> parse_pass(const std::string& text) {
  auto eq = text.find('=');
  std::string name = text.substr(0, eq);
  nlohmann::json options = nlohmann::json::object();
  if (eq != std::string::npos) {
    try {
      options = nlohmann::json::parse(text.substr(eq + 1));
    } catch (const std::exception&) {
      bad_input("--pass " + name + ": the options after '=' are not valid JSON");
    }
  }
  return {name, options};
}

}  // namespace

int cmd_convert(int argc, char** argv) {
  cxxopts::Options options("compress convert",
                           "Import a TorchScript model, run graph passes on it and export it again. Without "
                           "passes the output computes exactly what the input does.");
  options.positional_help("IN -o OUT");
  options.add_options()
      ("in", "input TorchScript model", cxxopts::value<std::string>())
      ("o,output", "output model file (written atomically; never the input)", cxxopts::value<std::string>())
      ("fold-bn", "fold batch norms into the preceding convolution or linear layer (--pass fold_batch_norm)")
      ("strip-dropout", "remove dropout, the identity in eval mode (--pass strip_dropout)")
      ("pass", "run a pass by name, with options as JSON: --pass 'fold_batch_norm={\"linear\":false}' (repeatable, in order)",
       cxxopts::value<std::vector<std::string>>())
      ("list-passes", "list the passes and their options")
      ("q,quiet", "print nothing on success")
      ("h,help", "show this help");
  add_input_options(options, "example input shape for passes that need shapes (traced models record their own)");
  options.parse_positional({"in"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (args.count("list-passes")) {
    for (const auto& name : pass_names()) {
      const PassInfo& info = pass_info(name);
      std::cout << name << "  " << info.default_options.dump() << "\n    " << info.summary << "\n";
    }
    return 0;
  }
  if (!args.count("in")) bad_input("no input model given (usage: compress convert IN -o OUT)");
  if (!args.count("output")) bad_input("no output file given (-o OUT)");
  const std::string in = args["in"].as<std::string>();
  const std::string out = args["output"].as<std::string>();

  // The passes, in the order given: the shorthand flags first.
  std::vector<std::pair<std::string, nlohmann::json>> passes;
  if (args.count("fold-bn")) passes.push_back({"fold_batch_norm", nlohmann::json::object()});
  if (args.count("strip-dropout")) passes.push_back({"strip_dropout", nlohmann::json::object()});
  if (args.count("pass"))
    for (const auto& text : args["pass"].as<std::vector<std::string>>()) passes.push_back(parse_pass(text));
  for (const auto& p : passes) pass_info(p.first);  // unknown names fail before any work

  torch::jit::Module module = load_module(in);
  Graph graph = import_module(module);
  apply_input_shapes(graph, args, in, /*required=*/false);
  std::vector<PassResult> results;
  for (const auto& p : passes) results.push_back(run_pass(graph, p.first, p.second));
  torch::jit::Module exported = export_module(graph);
  save_module(exported, out, /*protect=*/in);
  if (!args.count("quiet")) {
    std::cout << "wrote " << out << ": " << graph.num_nodes() << " nodes\n";
    for (const PassResult& r : results) {
      std::cout << r.pass << ": " << r.changed << " changed, " << r.skipped.size() << " left alone\n";
      for (const auto& s : r.skipped) std::cout << "  left alone: " << s << "\n";
    }
    std::cout << std::flush;
  }
  return 0;
}

}  // namespace compress::cli
