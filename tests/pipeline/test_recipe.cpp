// Recipe validation: every problem found before anything runs, one line
// each, named by its JSON path.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "compress/pipeline/recipe.h"
#include "temp_dir.h"
#include "test_paths.h"
#include "train/cli_run.h"

using compress::pipeline::parse_recipe;
using compress::pipeline::Recipe;
using compress::testing::TempDir;

namespace {

std::vector<std::string> problems(const nlohmann::json& j) {
  Recipe r;
  return parse_recipe(j, "", r);
}

nlohmann::json good_recipe() {
  return nlohmann::json::parse(R"({
    "model": {"arch": "cnn"},
    "data": {"source": "fashion-mnist", "train_limit": 100},
    "stages": [
      {"train": {"epochs": 1}},
      {"prune": {"target_macs": 0.5, "finetune": {"epochs": 1}}},
      {"distill": {"teacher": "before stage 1", "temperature": 3, "epochs": 1}},
      {"quantize": {"method": "minmax"}},
      {"eval": {}},
      {"bench": {"batches": [1, 32]}}
    ]})");
}

bool has_line(const std::vector<std::string>& lines, const std::string& text) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l == text; });
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

}  // namespace

TEST_CASE("recipe: a valid recipe parses with its defaults filled in", "[pipeline][recipe]") {
  Recipe r;
  auto errors = parse_recipe(good_recipe(), "", r);
  INFO(joined(errors));
  REQUIRE(errors.empty());
  REQUIRE(r.stages.size() == 6);
  CHECK(r.arch == "cnn");
  CHECK(r.data.train_limit == 100);
  const auto prune = r.stages[1].stage->options();
  CHECK(prune["target_macs"] == 0.5);
  CHECK(prune["criterion"] == "l1");
  CHECK(prune["finetune"]["epochs"] == 1);
  const auto distill = r.stages[2].stage->options();
  CHECK(distill["teacher"] == "before stage 1");
  CHECK(distill["temperature"] == 3.0);
  CHECK(distill["alpha"] == 0.9);
  CHECK_FALSE(r.stages[4].stage->makes_model());
}

TEST_CASE("recipe: a misspelt key is named by its path with the closest valid name", "[pipeline][recipe]") {
  auto j = good_recipe();
  j["stages"][2]["distill"]["temprature"] = 2;
  j["stages"][1]["prune"]["finetune"]["epohcs"] = 2;
  j["modle"] = 1;
  auto e = problems(j);
  INFO(joined(e));
  CHECK(e.size() == 3);
  CHECK(has_line(e, "stages[2].distill.temprature: unknown key (did you mean 'temperature'?)"));
  CHECK(has_line(e, "stages[1].prune.finetune.epohcs: unknown key (did you mean 'epochs'?)"));
  CHECK(has_line(e, "modle: unknown key (did you mean 'model'?)"));
}

TEST_CASE("recipe: wrong types and values out of range, all reported at once", "[pipeline][recipe]") {
  auto j = good_recipe();
  j["stages"][2]["distill"]["alpha"] = "high";
  j["stages"][2]["distill"]["temperature"] = -1;
  j["stages"][1]["prune"]["target_macs"] = 1.5;
  j["stages"][0]["train"]["epochs"] = 1.5;
  j["stages"][3]["quantize"]["method"] = "minmx";
  j["stages"][5]["bench"]["batches"] = {1, 0};
  j["threads"] = 0;
  auto e = problems(j);
  INFO(joined(e));
  CHECK(e.size() == 7);
  CHECK(has_line(e, "stages[2].distill.alpha: expected a number, got string \"high\""));
  CHECK(has_line(e, "stages[2].distill.temperature: -1 is out of range: must be in (0, 1000]"));
  CHECK(has_line(e, "stages[1].prune.target_macs: 1.5 is out of range: must be in (0, 1)"));
  CHECK(has_line(e, "stages[0].train.epochs: expected an integer, got number 1.5"));
  CHECK(has_line(e, "stages[3].quantize.method: 'minmx' is not one of minmax, percentile, entropy, mse (did you mean 'minmax'?)"));
  CHECK(has_line(e, "stages[5].bench.batches[1]: 0 is out of range: must be at least 1"));
  CHECK(has_line(e, "threads: 0 is out of range: must be in [1, 1024]"));
}

TEST_CASE("recipe: a teacher from a later stage, a stage that makes no model, an unknown stage", "[pipeline][recipe]") {
  auto j = good_recipe();
  j["stages"][2]["distill"]["teacher"] = "stage 2";  // its own output does not exist yet
  auto e = problems(j);
  INFO(joined(e));
  REQUIRE(e.size() == 1);
  CHECK(e[0].rfind("stages[2].distill.teacher: 'stage 2' refers to a later stage", 0) == 0);

  j["stages"][2]["distill"]["teacher"] = "before stage 3";
  e = problems(j);
  REQUIRE(e.size() == 1);
  CHECK(e[0].rfind("stages[2].distill.teacher: 'before stage 3' refers to a later stage", 0) == 0);

  j["stages"][2]["distill"]["teacher"] = "";
  e = problems(j);
  REQUIRE(e.size() == 1);
  CHECK(e[0] == "stages[2].distill.teacher: empty: give a model file, \"stage N\" or \"before stage N\"");
  j["stages"][2]["distill"].erase("teacher");
  e = problems(j);
  REQUIRE(e.size() == 1);
  CHECK(e[0] == "stages[2].distill.teacher: missing: a model file, \"stage N\" or \"before stage N\"");

  j["stages"][2]["distill"]["teacher"] = "before stage 2";  // the model this stage starts from: allowed
  CHECK(problems(j).empty());
  j["stages"][2]["distill"]["teacher"] = "stage 0";
  CHECK(problems(j).empty());

  auto k = good_recipe();
  k["stages"].push_back({{"distill", {{"teacher", "stage 4"}}}});  // stages[4] is eval
  e = problems(k);
  REQUIRE(e.size() == 1);
  CHECK(e[0] == "stages[6].distill: 'stage 4' makes no model (stages[4] is eval)");

  auto m = good_recipe();
  m["stages"][3] = {{"quantise", nlohmann::json::object()}};
  e = problems(m);
  REQUIRE(e.size() == 1);
  CHECK(e[0] == "stages[3]: unknown stage 'quantise' (did you mean 'quantize'?)");
}

TEST_CASE("recipe: the model, data and stage list themselves", "[pipeline][recipe]") {
  auto e = problems(nlohmann::json::parse(R"({"model": {"arch": "cnn", "file": "x.pt"}, "stages": []})"));
  INFO(joined(e));
  CHECK(has_line(e, "model: give one of \"file\" (a saved model) or \"arch\" (a zoo architecture), not both"));
  CHECK(has_line(e, "input_shape: missing: required when the recipe gives no data (e.g. [1, 3, 224, 224])"));

  e = problems(nlohmann::json::parse(R"({"model": {"file": "/nonexistent/model.pt"}, "input_shape": [1, 3, 8, 8],
                                         "stages": [{"prune": {"ratio": 0.5}}, {"distill": {"teacher": "stage 0"}}]})"));
  INFO(joined(e));
  CHECK(has_line(e, "model.file: no such file: /nonexistent/model.pt"));
  CHECK(has_line(e, "stages[1].distill: needs labelled data: the recipe gives no \"data\""));

  e = problems(nlohmann::json::parse(R"({"model": {"arch": "cnm"}, "data": {"source": "fashion-mnist"},
                                         "stages": {"train": {}}})"));
  CHECK(has_line(e, "stages: expected an array of stages, got object"));
  CHECK(e.size() == 2);
  CHECK(e[0].rfind("model.arch: 'cnm' is not one of", 0) == 0);

  e = problems(nlohmann::json::parse(R"({"model": {"arch": "cnn"}, "data": {"source": "fashion-mnist"},
                                         "stages": [{"prune": {"ratio": 0.5}}, {"train": {}, "prune": {}}]})"));
  CHECK(has_line(e, "stages[0]: the model is a new (untrained) \"cnn\": the first stage must be train"));
  CHECK(has_line(e, "stages[1]: expected an object with one key, the stage kind, e.g. {\"prune\": {...}}"));
  CHECK(problems(nlohmann::json::array()).size() == 1);
}

TEST_CASE("recipe: a pdd stage refuses a fine-tuning rate together with one schedule", "[pipeline][recipe]") {
  auto recipe = [](const std::string& pdd) {
    return nlohmann::json::parse(R"({"model": {"arch": "cnn"}, "data": {"source": "fashion-mnist"},
      "stages": [{"train": {"epochs": 1}}, {"pdd": {"teacher": "stage 0", "finetune_epochs": 1, )" + pdd + "}}]}");
  };
  auto e = problems(recipe(R"("one_schedule": true, "finetune_lr": 0.01)"));
  INFO(joined(e));
  REQUIRE(e.size() == 1);
  CHECK(e[0] == "stages[1].pdd.finetune_lr: sets a restarted fine-tuning's rate; one_schedule continues the search's schedule");
  CHECK(problems(recipe(R"("one_schedule": true)")).empty());
  CHECK(problems(recipe(R"("finetune_lr": 0.01)")).empty());
}

TEST_CASE("recipe: relative paths are resolved against the recipe's folder", "[pipeline][recipe]") {
  const TempDir dir("recipe_paths");
  cli_test::make_set(dir, "set.pt", 8, 1);
  Recipe r;
  auto e = parse_recipe(nlohmann::json::parse(R"({"model": {"arch": "cnn"}, "data": {"source": "set.pt"},
                                                  "stages": [{"train": {"cache": "base.pt"}}]})"),
                        dir.path().string(), r);
  INFO(joined(e));
  REQUIRE(e.empty());
  CHECK(r.data.source == dir.file("set.pt"));
  CHECK(r.stages[0].stage->options()["cache"] == dir.file("base.pt"));
}

TEST_CASE("recipe: every example recipe is valid", "[pipeline][recipe]") {
  const std::filesystem::path dir = std::filesystem::path(COMPRESS_SOURCE_DIR) / "examples/recipes";
  int recipes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    ++recipes;
    std::ifstream in(e.path());
    Recipe r;
    auto errors = parse_recipe(nlohmann::json::parse(in), dir.string(), r);
    // The torchvision model is exported by a script first (examples/recipes/export_resnet18.py).
    errors.erase(std::remove_if(errors.begin(), errors.end(),
                                [](const std::string& l) { return l == "model.file: no such file: " COMPRESS_SOURCE_DIR "/out/resnet18.pt"; }),
                 errors.end());
    INFO(e.path().string() << "\n" << joined(errors));
    CHECK(errors.empty());
    CHECK_FALSE(r.stages.empty());
  }
  CHECK(recipes >= 7);  // quickstart, one per zoo architecture, torchvision
}

TEST_CASE("recipe: sparsify stage options, each problem named", "[pipeline][recipe]") {
  auto j = good_recipe();
  auto& st = j["stages"];
  st.push_back({{"sparsify", {{"sparsity", 0.8}, {"pattern", "1x4"}, {"finetune", {{"epochs", 1}}}}}});
  CHECK(problems(j).empty());  // agp is the default schedule when fine-tuning
  st.push_back({{"sparsify", {{"sparsity", 1.0}}}});
  st.push_back({{"sparsify", {{"pattern", "2:4"}, {"sparsity", 0.7}}}});
  st.push_back({{"sparsify", {{"sparsity", 0.5}, {"schedule", "agp"}}}});
  st.push_back({{"sparsify", {{"pattern", "4x1"}, {"sparsity", 0.5}}}});
  st.push_back({{"sparsify", {{"pattern", "1x4"}}}});
  st.push_back({{"sparsify", {{"pattern", "2:4"}, {"global", true}}}});
  auto e = problems(j);
  INFO(joined(e));
  CHECK(e.size() == 6);
  CHECK(has_line(e, "stages[7].sparsify.sparsity: 1 is out of range: must be in [0, 1)"));
  CHECK(has_line(e, "stages[8].sparsify.sparsity: 0.7 is out of range: must be in [0, 0.5]"));
  CHECK(has_line(e, "stages[9].sparsify.schedule: agp prunes gradually while fine-tuning: it needs \"finetune\": {\"epochs\": N}"));
  CHECK(has_line(e, "stages[10].sparsify.pattern: '4x1' is not one of unstructured, 1x4, 2:4 (did you mean '1x4'?)"));
  CHECK(has_line(e, "stages[11].sparsify: missing \"sparsity\" (the fraction of the selected weights to zero, in [0, 1))"));
  CHECK(has_line(e, "stages[12].sparsify.global: global ranking does not apply to 2:4 (N:M is per group by definition)"));
}

TEST_CASE("recipe: amc stage options, each problem named", "[pipeline][recipe]") {
  auto j = good_recipe();
  auto& st = j["stages"];
  st.push_back({{"amc", {{"target_macs", 0.5}, {"episodes", 30}}}});
  CHECK(problems(j).empty());  // warm-up defaults to a third of the episodes
  st.push_back({{"amc", {{"episodes", 30}}}});
  st.push_back({{"amc", {{"target_macs", 0.5}, {"episodes", 10}, {"warmup", 10}}}});
  st.push_back({{"amc", {{"target_macs", 1.5}}}});
  st.push_back({{"amc", {{"target_macs", 0.5}, {"rerank", -1}, {"rerank_size", 0}}}});
  auto e = problems(j);
  INFO(joined(e));
  CHECK(e.size() == 5);
  CHECK_THAT(joined(e), Catch::Contains("stages[10].amc.rerank: -1 is out of range"));
  CHECK_THAT(joined(e), Catch::Contains("stages[10].amc.rerank_size: 0 is out of range"));
  CHECK(has_line(e, "stages[7].amc: missing \"target_macs\" (the fraction of the MACs to keep, in (0, 1))"));
  CHECK(has_line(e, "stages[8].amc.warmup: 10 random episodes leave none of the 10 for the learned policy"));
  CHECK(has_line(e, "stages[9].amc.target_macs: 1.5 is out of range: must be in (0, 1)"));
}

TEST_CASE("recipe: pqk stage options, each problem named", "[pipeline][recipe]") {
  auto j = good_recipe();
  auto& st = j["stages"];
  st.push_back({{"pqk", {{"target_macs", 0.5}, {"epochs", 1}}}});
  CHECK(problems(j).empty());
  st.push_back({{"pqk", {{"epochs", 1}}}});
  st.push_back({{"pqk", {{"target_macs", 0.5}, {"criterion", "bn"}, {"alpha", 2}, {"repair_fraction", 1.5}}}});
  st.push_back({{"pqk", {{"target_macs", 0.5}, {"teacher", "float"}, {"recalibrate_bn", -1}}}});
  auto e = problems(j);
  INFO(joined(e));
  CHECK(e.size() == 6);
  CHECK(has_line(e, "stages[7].pqk: missing \"target_macs\" (the fraction of the MACs to keep, in (0, 1))"));
  CHECK_THAT(joined(e), Catch::Contains("stages[8].pqk.criterion: 'bn' is not one of l1, l2, fpgm, taylor, random"));
  CHECK(has_line(e, "stages[8].pqk.alpha: 2 is out of range: must be in [0, 1]"));
  CHECK(has_line(e, "stages[8].pqk.repair_fraction: 1.5 is out of range: must be in [0, 1]"));
  CHECK_THAT(joined(e), Catch::Contains("stages[9].pqk.teacher: 'float' is not one of restored, input"));
  CHECK_THAT(joined(e), Catch::Contains("stages[9].pqk.recalibrate_bn: -1 is out of range"));
}

TEST_CASE("recipe: a prune stage's iterative_steps, each problem named", "[pipeline][recipe]") {
  auto j = good_recipe();
  auto& st = j["stages"];
  st.push_back({{"prune", {{"target_macs", 0.5}, {"iterative_steps", 2}, {"finetune", {{"epochs", 2}}}}}});
  CHECK(problems(j).empty());
  st.push_back({{"prune", {{"ratio", 0.5}, {"iterative_steps", 2}, {"finetune", {{"epochs", 2}}}}}});
  st.push_back({{"prune", {{"target_macs", 0.5}, {"iterative_steps", 2}, {"finetune", {{"epochs", 3}}}}}});
  st.push_back({{"prune", {{"target_macs", 0.5}, {"iterative_steps", 2}}}});
  st.push_back({{"prune", {{"target_macs", 0.5}, {"iterative_steps", 0}}}});
  auto e = problems(j);
  INFO(joined(e));
  CHECK(e.size() == 4);
  CHECK(has_line(e, "stages[7].prune.iterative_steps: splits a \"target_macs\" budget into steps: give target_macs, not ratio"));
  CHECK(has_line(e, "stages[8].prune.iterative_steps: fine-tunes after every step: finetune.epochs must be a positive "
                    "multiple of 2, got 3"));
  CHECK(has_line(e, "stages[9].prune.iterative_steps: fine-tunes after every step: finetune.epochs must be a positive "
                    "multiple of 2, got 0"));
  CHECK(has_line(e, "stages[10].prune.iterative_steps: 0 is out of range: must be in [1, 1000]"));
}
