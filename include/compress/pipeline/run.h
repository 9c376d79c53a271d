#pragma once
// Running a recipe (recipe.h) and the report it writes.
//
// Layout of the output folder DIR:
//   DIR/input/report.json           the saved model the recipe starts from, measured (recipes with "model.file")
//   DIR/init/model.pt               the new zoo model (recipes with "model.arch")
//   DIR/NN-KIND/model.pt            stage NN's model (NN from 00, as in "stages[NN]"; eval and bench make none)
//   DIR/NN-KIND/report.json         its options, key, metrics, details and time
//   DIR/report.json, report.md, report.html   the whole pipeline
// Every file is written atomically. A stage is skipped when its report
// records the same key (a hash of its kind, options, input models' contents
// and data) and its model still has the recorded hash; an interrupted
// training stage resumes from the checkpoint in its folder.
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "compress/pipeline/recipe.h"

namespace compress::pipeline {

struct RunOptions {
  bool quiet = false;  // no progress lines, no training progress
  // One line per stage event ("[2/5] 01-prune: done in 3.2 s ..."); default: stderr.
  std::function<void(const std::string&)> progress;
};

// Runs `recipe` into `out_dir` (created; Error(BadInput) when it is a file)
// and returns the pipeline report (also written there, with its Markdown
// and HTML renderings).
nlohmann::json run_pipeline(const Recipe& recipe, const std::string& out_dir, const RunOptions& options = {});

// FNV-1a 64 of a file's bytes / of a string, as 16 hex digits.
std::string hash_file(const std::string& path);
std::string hash_text(const std::string& text);

}  // namespace compress::pipeline
