// compress run end to end on a tiny recipe (a quarter-width cnn, a synthetic
// data file, one epoch each), reruns that skip what did not change, and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "compress/pipeline/run.h"
#include "skip.h"
#include "temp_dir.h"
#include "test_util.h"
#include "train/cli_run.h"

namespace fs = std::filesystem;
using cli_test::run;
using cli_test::Run;
using compress::testing::TempDir;

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void write(const std::string& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(2); }

nlohmann::json tiny_recipe() {
  return nlohmann::json::parse(R"({
    "description": "tiny test pipeline",
    "model": {"arch": "cnn", "width": 0.25},
    "data": {"source": "set.pt", "train_limit": 256, "test_limit": 128},
    "threads": 1,
    "stages": [
      {"train": {"epochs": 1, "batch_size": 32, "lr": 0.05}},
      {"prune": {"target_macs": 0.5, "finetune": {"epochs": 1, "batch_size": 32}}},
      {"distill": {"teacher": "before stage 1", "epochs": 1, "batch_size": 32, "lr": 0.02}},
      {"quantize": {"calib_batches": 2}},
      {"eval": {"split": "train"}},
      {"bench": {"batches": [1, 4], "repeats": 2, "warmup": 1, "rounds": 1}}
    ]})");
}

int count_lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("run: a tiny recipe end to end, then a rerun skips every unchanged stage", "[pipeline][run]") {
  const TempDir dir("pipeline_run");
  cli_test::make_set(dir, "set.pt", 384, 1);
  const std::string recipe = dir.file("tiny.json"), out = dir.file("out");
  write(recipe, tiny_recipe());
  Run r = run("run " + recipe + " -o " + out);
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("[2/7] 00-train: running") != std::string::npos);
  CHECK(r.out.find("| 03-quantize |") != std::string::npos);  // the summary table

  for (const char* f : {"00-train/model.pt", "01-prune/model.pt", "02-distill/model.pt", "03-quantize/model.pt",
                        "04-eval/report.json", "05-bench/report.json", "report.json", "report.md", "report.html"})
    CHECK(fs::exists(fs::path(out) / f));
  CHECK_FALSE(fs::exists(fs::path(out) / "00-train/checkpoint.pt"));  // removed once the stage is done
  const auto rep = read_json(out + "/report.json");
  REQUIRE(rep["rows"].size() == 4);
  const auto& rows = rep["rows"];
  CHECK(rows[0]["name"] == "00-train");
  CHECK(rows[1]["macs"].get<double>() <= 0.5 * rows[0]["macs"].get<double>());
  CHECK(rows[1]["params"].get<double>() < rows[0]["params"].get<double>());
  CHECK(rows[3]["macs"] == rows[2]["macs"]);  // quantization keeps the work, changes the arithmetic
  CHECK(rows[3]["file_bytes"].get<double>() < 0.6 * rows[2]["file_bytes"].get<double>());
  for (const auto& row : rows) {
    CHECK(row["accuracy"].get<double>() > 0.3);  // the quadrant set is easy: chance is 0.25
    CHECK(row["latency_ms"]["1"]["1"].get<double>() > 0);
    CHECK(row["latency_ms"]["1"]["4"].get<double>() > 0);
  }
  const auto& stages = rep["stages"];
  REQUIRE(stages.size() == 6);
  CHECK(stages[0]["details"]["loss_curve"].size() == 8);  // 256 / 32 steps, one point each
  CHECK(stages[1]["details"]["result"]["groups"].size() > 0);
  CHECK(stages[3]["details"]["layers"].size() > 0);
  CHECK(stages[4]["details"]["count"] == 256);
  CHECK(stages[4]["details"]["split"] == "train");

  // Unchanged: everything skipped, the same models and figures.
  Run again = run("run " + recipe + " -o " + out);
  INFO(again.out);
  REQUIRE(again.code == 0);
  const auto rep2 = read_json(out + "/report.json");
  for (const auto& s : rep2["stages"]) CHECK(s["skipped"] == true);
  CHECK(rep2["rows"][2]["accuracy"] == rows[2]["accuracy"]);
  CHECK(rep2["stages"][1]["output_hash"] == stages[1]["output_hash"]);

  // One option of stage 2 changed: stages 0 and 1 skipped, 2 and after run again.
  auto changed = tiny_recipe();
  changed["stages"][2]["distill"]["temperature"] = 2.0;
  write(recipe, changed);
  Run third = run("run " + recipe + " -o " + out + " --quiet");
  INFO(third.out);
  REQUIRE(third.code == 0);
  const auto rep3 = read_json(out + "/report.json");
  CHECK(rep3["stages"][0]["skipped"] == true);
  CHECK(rep3["stages"][1]["skipped"] == true);
  for (size_t i = 2; i < 6; ++i) CHECK(rep3["stages"][i]["skipped"] == false);
  CHECK(rep3["stages"][2]["options"]["temperature"] == 2.0);

  // A stage's model replaced behind the runner's back is noticed, not trusted.
  fs::copy_file(out + "/00-train/model.pt", out + "/01-prune/model.pt", fs::copy_options::overwrite_existing);
  Run fourth = run("run " + recipe + " -o " + out + " --quiet");
  REQUIRE(fourth.code == 0);
  const auto rep4 = read_json(out + "/report.json");
  CHECK(rep4["stages"][0]["skipped"] == true);
  CHECK(rep4["stages"][1]["skipped"] == false);
  CHECK(rep4["rows"][1]["macs"] == rows[1]["macs"]);
}

TEST_CASE("run: an invalid recipe is refused before anything runs, one line per problem", "[pipeline][run][bad-input]") {
  const TempDir dir("pipeline_bad");
  cli_test::make_set(dir, "set.pt", 64, 1);
  const std::string recipe = dir.file("bad.json"), out = dir.file("out");
  auto j = tiny_recipe();
  j["stages"][2]["distill"]["temprature"] = 2;
  j["stages"][2]["distill"]["teacher"] = "stage 3";
  j["stages"][1]["prune"]["target_macs"] = "half";
  write(recipe, j);
  Run r = run("run " + recipe + " -o " + out);
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(count_lines(r.out) == 3);
  CHECK(r.out.find("compress run: error: " + recipe +
                   ": stages[2].distill.temprature: unknown key (did you mean 'temperature'?)\n") != std::string::npos);
  CHECK(r.out.find("stages[2].distill.teacher: 'stage 3' refers to a later stage") != std::string::npos);
  CHECK(r.out.find("stages[1].prune.target_macs: expected a number, got string \"half\"") != std::string::npos);
  CHECK_FALSE(fs::exists(out));  // nothing written

  Run check = run("run " + recipe + " --check");
  CHECK(check.code == 2);

  std::ofstream(dir.file("notjson.json")) << "{\"model\": ";
  Run nj = run("run " + dir.file("notjson.json") + " -o " + out);
  CHECK(nj.code == 2);
  CHECK(count_lines(nj.out) == 1);
  CHECK(nj.out.find("not valid JSON") != std::string::npos);
  // A number too large for a double (found by fuzz_recipe): the same one line.
  std::ofstream(dir.file("huge.json")) << "{\"threads\": 1e999999}";
  Run huge = run("run " + dir.file("huge.json") + " -o " + out);
  CHECK(huge.code == 2);
  CHECK(count_lines(huge.out) == 1);
  CHECK(huge.out.find(dir.file("huge.json") + ": not valid JSON (a number out of range)") != std::string::npos);
  // A stage number too large for int64 (found by fuzz_recipe): a problem like any other.
  std::ofstream(dir.file("far.json"))
      << R"({"model": {"arch": "cnn"}, "data": {"source": "fashion-mnist"}, "stages": [{"train": {"epochs": 1}},
             {"distill": {"teacher": "before stage 99999999999999999999"}}]})";
  Run far = run("run " + dir.file("far.json") + " -o " + out);
  CHECK(far.code == 2);
  CHECK(far.out.find("stages[1].distill.teacher: 'before stage 99999999999999999999': no such stage") !=
        std::string::npos);

  Run missing = run("run " + dir.file("nothere.json"));
  CHECK(missing.code == 2);
  CHECK(count_lines(missing.out) == 1);
}

TEST_CASE("run: a missing input model and an output folder that is a file", "[pipeline][run][bad-input]") {
  const TempDir dir("pipeline_bad_io");
  cli_test::make_set(dir, "set.pt", 64, 1);
  auto j = tiny_recipe();
  j["model"] = {{"file", "gone.pt"}};
  j["stages"] = {{{"eval", nlohmann::json::object()}}};
  write(dir.file("missing.json"), j);
  Run r = run("run " + dir.file("missing.json") + " -o " + dir.file("out"));
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(count_lines(r.out) == 1);
  CHECK(r.out.find("model.file: no such file: " + dir.file("gone.pt")) != std::string::npos);

  // A teacher file that does not exist.
  auto t = tiny_recipe();
  t["stages"][2]["distill"]["teacher"] = "teacher.pt";
  write(dir.file("teacher.json"), t);
  r = run("run " + dir.file("teacher.json") + " -o " + dir.file("out"));
  CHECK(r.code == 2);
  CHECK(r.out.find("stages[2].distill.teacher: no such file: " + dir.file("teacher.pt")) != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("out")));

  std::ofstream(dir.file("afile")) << "x";
  write(dir.file("ok.json"), tiny_recipe());
  r = run("run " + dir.file("ok.json") + " -o " + dir.file("afile"));
  CHECK(r.code == 2);
  CHECK(count_lines(r.out) == 1);
  CHECK(r.out.find("output folder " + dir.file("afile") + " exists and is not a folder") != std::string::npos);
}

TEST_CASE("run: the example program runs a pipeline through the library API", "[pipeline][run][example]") {
  const std::string example = std::string(COMPRESS_BINARY_DIR) + "/bin/pipeline_example";
  if (!fs::exists(example)) COMPRESS_SKIP("the examples were not built (COMPRESS_BUILD_EXAMPLES=OFF)");
  const TempDir dir("pipeline_example");
  const std::string data = cli_test::make_set(dir, "set.pt", 192, 3), out = dir.file("out");
  const std::string cmd = example + " " + out + " --tiny " + data + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string text;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) text.append(buf, n);
  const int status = pclose(p);
  INFO(text);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(text.find("| 03-quantize |") != std::string::npos);
  const auto rep = read_json(out + "/report.json");
  CHECK(rep["rows"].size() == 4);
  CHECK(rep["rows"][3]["latency_ms"]["1"]["1"].get<double>() > 0);
}

TEST_CASE("run: a train stage's cache is filled once and reused by other runs", "[pipeline][run]") {
  const TempDir dir("pipeline_cache");
  cli_test::make_set(dir, "set.pt", 128, 4);
  nlohmann::json j = nlohmann::json::parse(R"({
    "model": {"arch": "cnn", "width": 0.25}, "data": {"source": "set.pt"}, "threads": 1, "measure_accuracy": false,
    "stages": [{"train": {"epochs": 1, "batch_size": 32, "cache": "cache/baseline.pt"}}]})");
  write(dir.file("r.json"), j);
  fs::create_directories(dir.file("cache"));
  REQUIRE(run("run " + dir.file("r.json") + " -o " + dir.file("a") + " --quiet").code == 0);
  REQUIRE(fs::exists(dir.file("cache/baseline.pt")));
  const auto a = read_json(dir.file("a/report.json"));
  CHECK_FALSE(a["stages"][0]["details"].contains("reused"));
  CHECK(a["stages"][0]["details"]["steps"] == 4);

  Run b = run("run " + dir.file("r.json") + " -o " + dir.file("b"));
  INFO(b.out);
  REQUIRE(b.code == 0);
  CHECK(b.out.find("epoch 1/1") == std::string::npos);  // no training
  const auto rb = read_json(dir.file("b/report.json"));
  CHECK(rb["stages"][0]["details"]["reused"] == dir.file("cache/baseline.pt"));
  CHECK(rb["stages"][0]["output_hash"] == a["stages"][0]["output_hash"]);
  CHECK(compress::pipeline::hash_file(dir.file("b/00-train/model.pt")) ==
        compress::pipeline::hash_file(dir.file("cache/baseline.pt")));
}

TEST_CASE("run: a training stage killed part way resumes from its checkpoint, as if never stopped", "[pipeline][run][resume]") {
  const TempDir dir("pipeline_resume");
  cli_test::make_set(dir, "set.pt", 1024, 5);
  write(dir.file("r.json"), nlohmann::json::parse(R"({
    "model": {"arch": "cnn", "width": 0.25}, "data": {"source": "set.pt"}, "threads": 1, "measure_accuracy": false,
    "stages": [{"train": {"epochs": 2, "batch_size": 16, "lr": 0.02, "checkpoint_steps": 8}}]})"));
  // Uninterrupted, for reference.
  REQUIRE(run("run " + dir.file("r.json") + " -o " + dir.file("whole") + " --quiet").code == 0);

  const std::string ckpt = dir.file("cut/00-train/checkpoint.pt");
  const pid_t pid = cli_test::spawn({"run", dir.file("r.json"), "-o", dir.file("cut")}, dir.file("log.txt"));
  REQUIRE(pid > 0);
  int status = 0;
  bool killed = false;
  for (int i = 0; i < 6000 && !killed; ++i) {  // up to 2 minutes
    if (waitpid(pid, &status, WNOHANG) == pid) break;  // finished before a checkpoint was seen
    if (fs::exists(ckpt)) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      killed = true;
    }
    usleep(20000);
  }
  REQUIRE(killed);
  CHECK_FALSE(fs::exists(dir.file("cut/00-train/model.pt")));

  Run again = run("run " + dir.file("r.json") + " -o " + dir.file("cut"));
  INFO(again.out);
  REQUIRE(again.code == 0);
  CHECK(again.out.find("resuming from " + ckpt) != std::string::npos);
  CHECK_FALSE(fs::exists(ckpt));  // removed once the stage is done
  torch::jit::Module a = torch::jit::load(dir.file("whole/00-train/model.pt"));
  torch::jit::Module b = torch::jit::load(dir.file("cut/00-train/model.pt"));
  auto pa = a.named_parameters(), pb = b.named_parameters();
  size_t n = 0;
  for (auto ia = pa.begin(), ib = pb.begin(); ia != pa.end() && ib != pb.end(); ++ia, ++ib, ++n) {
    INFO((*ia).name);
    CHECK(at::equal((*ia).value, (*ib).value));
  }
  CHECK(n > 0);
}

TEST_CASE("run: pdd and qat stages, a teacher named by stage", "[pipeline][run]") {
  const TempDir dir("pipeline_pdd_qat");
  cli_test::make_set(dir, "set.pt", 256, 6);
  write(dir.file("r.json"), nlohmann::json::parse(R"({
    "model": {"arch": "cnn", "width": 0.25}, "data": {"source": "set.pt", "test_limit": 128}, "threads": 1,
    "stages": [
      {"train": {"epochs": 1, "batch_size": 32, "lr": 0.05}},
      {"pdd": {"teacher": "stage 0", "target_macs": 0.6, "epochs": 1, "batch_size": 32, "lr": 0.02,
               "finetune_epochs": 1}},
      {"qat": {"epochs": 1, "batch_size": 32, "calib_batches": 2}}
    ]})"));
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  const auto& rows = rep["rows"];
  REQUIRE(rows.size() == 3);
  CHECK(rows[1]["kind"] == "pdd");
  CHECK(rows[1]["macs"].get<double>() < rows[0]["macs"].get<double>());
  CHECK(rep["stages"][1]["details"]["result"]["groups"].size() > 0);
  CHECK(rep["stages"][1]["details"]["gated_macs_per_epoch"].size() == 1);
  CHECK(rows[2]["kind"] == "qat");
  CHECK(rows[2]["macs"] == rows[1]["macs"]);
  CHECK(rows[2]["file_bytes"].get<double>() < 0.6 * rows[1]["file_bytes"].get<double>());
  CHECK(rows[2]["accuracy"].get<double>() > 0.3);
  CHECK(rep["stages"][2]["details"]["int8_layers"].get<int>() > 0);
  CHECK(rep["stages"][2]["details"]["loss_curve"].size() == 8);
}

TEST_CASE("run: a torchvision model without data: prune by magnitude, random calibration", "[pipeline][run][python]") {
  const std::string model = compress::testing::fixture("resnet18.pt");  // skips when it could not be made
  const TempDir dir("pipeline_nodata");
  write(dir.file("r.json"), nlohmann::json{
      {"model", {{"file", model}}},
      {"input_shape", {1, 3, 64, 64}},
      {"threads", 2},
      {"stages", {{{"prune", {{"target_macs", 0.5}}}},
                  {{"quantize", {{"calib", "random"}, {"calib_batches", 2}, {"calib_batch_size", 2}}}},
                  {{"bench", {{"batches", {1}}, {"repeats", 2}, {"warmup", 1}, {"rounds", 1}}}}}}});
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  const auto& rows = rep["rows"];
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["name"] == "input");
  CHECK_FALSE(rows[0].contains("accuracy"));  // no data, no accuracy
  CHECK(rows[1]["macs"].get<double>() <= 0.5 * rows[0]["macs"].get<double>());
  CHECK(rows[2]["file_bytes"].get<double>() < 0.35 * rows[1]["file_bytes"].get<double>());
  for (const auto& row : rows) CHECK(row["latency_ms"]["1"]["1"].get<double>() > 0);
}

TEST_CASE("run: a sparsify stage ramps 1x4 sparsity with AGP, then quantize packs it", "[pipeline][run]") {
  const TempDir dir("pipeline_sparsify");
  cli_test::make_set(dir, "set.pt", 256, 7);
  write(dir.file("r.json"), nlohmann::json::parse(R"({
    "model": {"arch": "cnn", "width": 0.5}, "data": {"source": "set.pt", "test_limit": 128}, "threads": 1,
    "stages": [
      {"train": {"epochs": 1, "batch_size": 32, "lr": 0.05}},
      {"sparsify": {"sparsity": 0.75, "pattern": "1x4", "finetune": {"epochs": 1, "batch_size": 32},
                    "mask_updates": 4}},
      {"quantize": {"calib_batches": 2, "sparse": "1x4"}}
    ]})"));
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  const auto& stages = rep["stages"];
  REQUIRE(stages.size() == 3);
  const auto& sp = stages[1];
  CHECK(sp["options"]["schedule"] == "agp");  // the default when fine-tuning
  CHECK(sp["details"]["mask_updates"].get<int>() >= 1);
  CHECK(sp["details"]["agp"]["total_steps"] == 8);  // 256 / 32
  CHECK(sp["details"]["loss_curve"].size() == 8);
  REQUIRE(sp["details"]["layers"].size() > 0);
  for (const auto& l : sp["details"]["layers"]) {
    INFO(l.dump());
    CHECK(l["block_1x4_sparsity"].get<double>() >= 0.74);
  }
  // The saved float model is exactly sparse: reload it and count.
  auto model = torch::jit::load(dir.file("out/01-sparsify/model.pt"));
  const std::string first = sp["details"]["layers"][0]["weight"];
  for (const auto& p : model.named_parameters(true))
    if (p.name == first) CHECK(p.value.eq(0).to(at::kFloat).mean().item<double>() >= 0.74);
  // Forced 1x4: the quantize stage packs every pruned linear layer sparse
  // (3x3 convolutions have no sparse kernel and stay dense).
  std::map<std::string, std::string> format;
  for (const auto& l : stages[2]["details"]["layers"]) format[l["name"]] = l.value("weight_format", "");
  int linear = 0;
  for (const auto& l : sp["details"]["layers"]) {
    if (l["shape"].size() != 2) continue;
    ++linear;
    CHECK(format[l["name"]] == "sparse_1x4");
  }
  CHECK(linear >= 1);
  CHECK(rep["rows"][2]["accuracy"].get<double>() > 0.3);
}

TEST_CASE("run: a dynamic quantize stage on an LSTM classifier", "[pipeline][run]") {
  const TempDir dir("pipeline_dynamic");
  cli_test::make_set(dir, "set.pt", 128, 8);
  write(dir.file("r.json"), nlohmann::json::parse(R"({
    "model": {"arch": "lstm", "width": 0.25}, "data": {"source": "set.pt"}, "threads": 1,
    "stages": [
      {"train": {"epochs": 1, "batch_size": 32}},
      {"quantize": {"dynamic": true, "measure": false}}
    ]})"));
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  const auto& q = rep["stages"][1];
  CHECK(q["options"]["dynamic"] == true);  // measure off: every layer converts, whatever the machine's load
  CHECK_FALSE(q["options"].contains("calib"));  // nothing calibrated
  bool lstm_int8 = false;
  for (const auto& l : q["details"]["layers"]) lstm_int8 |= l["kind"] == "LSTM" && l["precision"] == "int8";
  CHECK(lstm_int8);
  CHECK(rep["rows"][1]["macs"] == rep["rows"][0]["macs"]);
  CHECK(rep["rows"][1]["file_bytes"].get<double>() < 0.6 * rep["rows"][0]["file_bytes"].get<double>());

  // Calibration options make no sense for it: named, before anything runs.
  write(dir.file("bad.json"), nlohmann::json::parse(R"({
    "model": {"arch": "lstm"}, "data": {"source": "set.pt"},
    "stages": [{"train": {"epochs": 1}}, {"quantize": {"dynamic": true, "calib": "random"}}]})"));
  Run bad = run("run " + dir.file("bad.json") + " -o " + dir.file("out2"));
  CHECK(bad.code == 2);
  CHECK(bad.out.find("stages[1].quantize.calib: does not apply to dynamic quantization") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("out2")));
}

TEST_CASE("run: an amc stage searches keep ratios under a MACs budget", "[pipeline][run]") {
  const TempDir dir("pipeline_amc");
  cli_test::make_set(dir, "set.pt", 256, 9);
  write(dir.file("r.json"), nlohmann::json::parse(R"({
    "model": {"arch": "cnn", "width": 0.25}, "data": {"source": "set.pt", "test_limit": 128}, "threads": 1,
    "stages": [
      {"train": {"epochs": 1, "batch_size": 32, "lr": 0.05}},
      {"amc": {"target_macs": 0.5, "episodes": 6, "warmup": 3, "val_size": 64, "recalibrate_bn": 1,
               "finetune": {"epochs": 1, "batch_size": 32}}}
    ]})"));
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  const auto& rows = rep["rows"];
  REQUIRE(rows.size() == 2);
  CHECK(rows[1]["kind"] == "amc");
  CHECK(rows[1]["macs"].get<double>() <= 0.5 * rows[0]["macs"].get<double>());  // every episode ends within the budget
  const auto& d = rep["stages"][1]["details"];
  CHECK(d["episodes"].size() == 6);
  CHECK(d["ratios"].size() > 0);
  CHECK(d["result"]["groups"].size() > 0);  // the widths chart's data
  CHECK(d["loss_curve"].size() == 8);  // fine-tuning on the whole training split: 256 / 32 steps
  // Re-ranked on what the split leaves after validation and calibration.
  REQUIRE(d.contains("best_selection_accuracy"));
  CHECK(d["best_selection_accuracy"].get<double>() >= 0);
  CHECK(d["best_episode"].get<int>() >= 0);
  CHECK(d["best_episode"].get<int>() < 6);
}

namespace {

// A cnn trained for an epoch, then a pqk stage at 60% of the MACs with
// `options` added to its own; checks that the stage wrote a smaller INT8
// model and returns the run's report.
nlohmann::json run_pqk_stage(const TempDir& dir, const nlohmann::json& options) {
  cli_test::make_set(dir, "set.pt", 192, 10);
  nlohmann::json recipe = nlohmann::json::parse(R"({
    "model": {"arch": "cnn", "width": 0.25}, "data": {"source": "set.pt", "test_limit": 128}, "threads": 1,
    "stages": [
      {"train": {"epochs": 1, "batch_size": 32, "lr": 0.05}},
      {"pqk": {"target_macs": 0.6, "epochs": 1, "finetune_epochs": 1, "batch_size": 32, "calib_batches": 2}}
    ]})");
  recipe["stages"][1]["pqk"].update(options);
  write(dir.file("r.json"), recipe);
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  const auto& rows = rep["rows"];
  REQUIRE(rows.size() == 2);
  CHECK(rows[1]["kind"] == "pqk");
  CHECK(rows[1]["macs"].get<double>() <= 0.6 * rows[0]["macs"].get<double>());
  CHECK(rows[1]["file_bytes"].get<double>() < 0.6 * rows[0]["file_bytes"].get<double>());
  CHECK(rep["stages"][1]["details"]["int8_layers"].get<int>() > 0);
  // The model is INT8: its graph calls the toolkit's ops.
  const std::string code = torch::jit::load(dir.file("out/01-pqk/model.pt")).get_method("forward").graph()->toString();
  CHECK(code.find("compress::") != std::string::npos);
  return rep;
}

}  // namespace

TEST_CASE("run: a pqk stage prunes with QAT, distils from the restored network and writes INT8", "[pipeline][run]") {
  const TempDir dir("pipeline_pqk");
  const auto rep = run_pqk_stage(dir, {{"prune_steps", 2}});
  const auto& d = rep["stages"][1]["details"];
  CHECK(d["result"]["groups"].size() > 0);
  CHECK(d["phase1_loss_per_epoch"].size() == 1);
  // The default teacher repair ran, and the KD gate's figures are reported.
  CHECK(d["repair_steps"].get<int>() >= 1);
  const auto& check = d["check"];
  CHECK(d["kd_used"].get<bool>() == (check["teacher_top1"].get<double>() > check["student_top1"].get<double>()));
  CHECK(d["batch_norms_recalibrated"].get<int>() == 0);
}

TEST_CASE("run: a pqk stage with phase 1 in float distils from the input model and writes INT8", "[pipeline][run]") {
  const TempDir dir("pipeline_pqk_float");
  const auto rep = run_pqk_stage(dir, {{"prune_steps", 1},
                                       {"teacher", "input"},
                                       {"phase1_float", true},
                                       {"phase1_kd", true},
                                       {"kd_gate", false}});
  const auto& d = rep["stages"][1]["details"];
  // No repair (the input model teaches), the batch norms re-estimated after the removal, KD in phase 2.
  CHECK(d["repair_steps"].get<int>() == 0);
  CHECK(d["batch_norms_recalibrated"].get<int>() > 0);
  CHECK(d["kd_used"].get<bool>());
}

TEST_CASE("run: a text model without data: token-id inputs through prune, random calibration and bench", "[pipeline][run][python]") {
  const std::string model = compress::testing::fixture("bag_text.pt");  // EmbeddingBag(100, 32) -> MLP
  const TempDir dir("pipeline_text");
  nlohmann::json recipe{
      {"model", {{"file", model}}},
      {"input_shape", {1, 12}},
      {"input_dtype", "int64"},
      {"threads", 1},
      {"stages", {{{"prune", {{"target_macs", 0.6}}}},
                  {{"quantize", {{"calib", "random"}, {"calib_batches", 2}, {"calib_batch_size", 4}}}},
                  {{"bench", {{"batches", {1, 8}}, {"repeats", 2}, {"warmup", 1}, {"rounds", 1}}}}}}};
  write(dir.file("r.json"), recipe);
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  CHECK(rep["sample_dtype"] == "int64");
  const auto& rows = rep["rows"];
  REQUIRE(rows.size() == 3);
  CHECK(rows[1]["macs"].get<double>() <= 0.6 * rows[0]["macs"].get<double>());
  CHECK(rep["stages"][1]["details"]["int8_layers"].get<int>() == 2);
  for (const auto& row : rows) CHECK(row["latency_ms"]["1"]["8"].get<double>() > 0);
  // A dtype that is none is refused with the recipe's other problems, before anything runs.
  recipe["input_dtype"] = "text";
  write(dir.file("bad.json"), recipe);
  r = run("run " + dir.file("bad.json") + " -o " + dir.file("out2") + " --check");
  CHECK(r.code == 2);
  CHECK(r.out.find("'text' is not a tensor dtype") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("out2")));
}

TEST_CASE("run: a prune stage with iterative_steps prunes in two steps, fine-tuning after each", "[pipeline][run]") {
  const TempDir dir("pipeline_iterative");
  cli_test::make_set(dir, "set.pt", 192, 12);
  write(dir.file("r.json"), nlohmann::json::parse(R"({
    "model": {"arch": "cnn", "width": 0.25}, "data": {"source": "set.pt", "test_limit": 64}, "threads": 1,
    "stages": [
      {"train": {"epochs": 1, "batch_size": 32, "lr": 0.05}},
      {"prune": {"target_macs": 0.5, "iterative_steps": 2, "recalibrate_bn": 2, "finetune": {"epochs": 2, "batch_size": 32}}}
    ]})"));
  Run r = run("run " + dir.file("r.json") + " -o " + dir.file("out") + " --quiet");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto rep = read_json(dir.file("out/report.json"));
  const auto& rows = rep["rows"];
  REQUIRE(rows.size() == 2);
  CHECK(rows[1]["macs"].get<double>() <= 0.5 * rows[0]["macs"].get<double>());
  const auto& d = rep["stages"][1]["details"];
  INFO(d.dump(1));
  CHECK(rep["stages"][1]["options"]["iterative_steps"] == 2);
  REQUIRE(d["iterative_steps"].size() == 2);
  const double first = d["iterative_steps"][0]["macs_kept"].get<double>(), second = d["iterative_steps"][1]["macs_kept"].get<double>();
  CHECK(first <= std::sqrt(0.5) + 1e-9);
  CHECK(first > 0.5);
  CHECK(second <= 0.5);
  CHECK(d["result"]["macs_after"] == d["iterative_steps"][1]["macs_after"]);
  CHECK(d["result"]["macs_after"] == rows[1]["macs"]);
  CHECK(d["batch_norms_recalibrated"].get<int>() > 0);
  // Both rounds' training, one epoch of 192 / 32 steps each, on one curve.
  REQUIRE(d["loss_curve"].size() == 12);
  CHECK(d["loss_curve"][11][0] == 12);
  for (const auto& e : fs::directory_iterator(dir.file("out/01-prune")))
    CHECK(e.path().filename().string().rfind("checkpoint", 0) != 0);  // each step's checkpoint removed
}
