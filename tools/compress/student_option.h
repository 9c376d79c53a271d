#pragma once
// The student of `compress distill` and `compress pdd`: --student MODEL, or
// --arch NAME [--width F] (a new zoo model), with the training recipe that
// goes with it (--recipe, else --arch's).
#include <string>

#include <cxxopts.hpp>

#include "compress/io.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"

namespace compress::cli {

struct Student {
  Graph graph;
  std::string description;  // for the checkpoint fingerprint and the summary line
  models::Recipe recipe;
};

// Exactly one of --student and --arch must be set (the caller checks).
inline Student load_student(const cxxopts::ParseResult& r, uint64_t seed) {
  Student s;
  const std::string arch = r["arch"].as<std::string>(), path = r["student"].as<std::string>();
  std::string recipe = r["recipe"].as<std::string>();
  if (!arch.empty()) {
    s.graph = import_module(models::build(arch, seed, 10, r["width"].as<double>()).module);
    if (recipe.empty()) recipe = arch;
    s.description = "arch=" + arch + " width=" + std::to_string(r["width"].as<double>());
  } else {
    s.graph = import_module(load_module(path));
    s.description = "student=" + path;
  }
  s.recipe = recipe.empty() ? models::Recipe{} : models::default_recipe(recipe);
  return s;
}

}  // namespace compress::cli
