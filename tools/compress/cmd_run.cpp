// compress run RECIPE.json [-o DIR] [--check] [--quiet]: runs a pipeline
// recipe (docs/pipeline.md) and prints its summary table.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <cxxopts.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/error.h"
#include "compress/pipeline/recipe.h"
#include "compress/pipeline/report.h"
#include "compress/pipeline/run.h"

namespace compress::cli {

int cmd_run(int argc, char** argv) {
  cxxopts::Options options("compress run",
                           "Run a pipeline recipe: the stages in order, each stage's model and report under DIR, "
                           "then DIR/report.json, report.md and report.html. A rerun skips the stages whose inputs "
                           "and options are unchanged. The recipe format: docs/pipeline.md.");
  options.positional_help("RECIPE.json [-o DIR]");
  options.add_options()
      ("recipe", "the recipe (JSON)", cxxopts::value<std::string>())
      ("o,output", "output folder (default: out/<recipe name>)", cxxopts::value<std::string>())
      ("check", "validate the recipe only, run nothing")
      ("q,quiet", "no progress lines")
      ("h,help", "show this help");
  options.parse_positional({"recipe"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!args.count("recipe")) bad_input("no recipe given (usage: compress run RECIPE.json [-o DIR])");
  const std::string path = args["recipe"].as<std::string>();
  pipeline::Recipe recipe;
  try {
    recipe = pipeline::load_recipe(path);
  } catch (const Error& e) {
    // Every problem of the recipe, one line each.
    std::istringstream lines(e.what());
    for (std::string line; std::getline(lines, line);) std::fprintf(stderr, "compress run: error: %s\n", line.c_str());
    said_elsewhere(e.kind(), e.what());
  }
  if (args.count("check")) {
    std::printf("%s: valid, %zu stages\n", path.c_str(), recipe.stages.size());
    return 0;
  }
  const std::string out = args.count("output") ? args["output"].as<std::string>()
                                               : "out/" + std::filesystem::path(path).stem().string();
  pipeline::RunOptions ro;
  ro.quiet = args.count("quiet") > 0;
  nlohmann::json report = pipeline::run_pipeline(recipe, out, ro);
  std::printf("%s\nreport: %s/report.json, report.md, report.html\n", pipeline::report_markdown(report).c_str(),
              out.c_str());
  return 0;
}

}  // namespace compress::cli
