// The quickstart pipeline through the C++ API: a recipe built in code,
// validated, run, and its summary table printed.
//   pipeline_example [OUT_DIR] [--tiny DATA.pt]
// --tiny runs a seconds-long version on a tensor dataset file (what the test suite does).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "compress/cpu_block_cache.h"
#include "compress/error.h"
#include "compress/pipeline/recipe.h"
#include "compress/pipeline/report.h"
#include "compress/pipeline/run.h"

int main(int argc, char** argv) {
  // Training and evaluation loops reuse their freed blocks (several times faster; docs/performance.md).
  compress::install_cpu_block_cache_from_env();
  const std::string out = argc > 1 ? argv[1] : "out/pipeline-example";
  const bool tiny = argc > 3 && std::string(argv[2]) == "--tiny";
  nlohmann::json recipe = {
      {"model", {{"arch", "cnn"}}},
      {"data", {{"source", "fashion-mnist"}}},
      {"stages",
       {{{"train", {{"epochs", 2}}}},
        {{"prune", {{"target_macs", 0.5}}}},
        {{"distill", {{"teacher", "before stage 1"}, {"epochs", 2}, {"lr", 0.01}}}},
        {{"quantize", nlohmann::json::object()}},
        {{"bench", {{"batches", {1, 32}}}}}}}};
  if (tiny) {
    recipe["model"]["width"] = 0.25;
    recipe["data"] = {{"source", argv[3]}, {"train_limit", 128}, {"test_limit", 64}};
    recipe["threads"] = 1;
    for (auto& s : recipe["stages"])
      for (auto& kv : s.items())
        if (kv.key() == "train" || kv.key() == "distill") kv.value()["epochs"] = 1;
    recipe["stages"][4]["bench"] = {{"batches", {1}}, {"repeats", 2}, {"warmup", 1}, {"rounds", 1}};
  }
  compress::pipeline::Recipe r;
  const auto problems = compress::pipeline::parse_recipe(recipe, ".", r);
  for (const auto& p : problems) std::fprintf(stderr, "recipe: %s\n", p.c_str());
  if (!problems.empty()) return 2;
  try {
    const nlohmann::json report = compress::pipeline::run_pipeline(r, out);
    std::printf("%s", compress::pipeline::report_markdown(report).c_str());
  } catch (const compress::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.kind() == compress::ErrorKind::BadInput ? 2 : 1;
  }
  return 0;
}
