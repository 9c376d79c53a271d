// compress train / compress eval end to end on a tiny synthetic dataset file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <fstream>
#include <utility>
#include <vector>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "compress/models/zoo.h"
#include "temp_dir.h"

namespace fs = std::filesystem;

using compress::testing::TempDir;

using cli_test::make_set;
using cli_test::run;
using cli_test::Run;

// A model compress prune wrote with --report `report` after fine-tuning on the
// quadrant set: it learnt, evaluates as reported, and remembers its input
// shape (no --input-shape needed to inspect it) and its MACs.
void check_pruned_model(const std::string& pruned, const std::string& data, const nlohmann::json& report) {
  CHECK(report["accuracy_after"].get<double>() > 0.5);  // chance is 0.25
  Run e = run("eval " + pruned + " --data " + data + " --json");
  REQUIRE(e.code == 0);
  CHECK(nlohmann::json::parse(e.out)["top1"].get<double>() == Approx(report["accuracy_after"].get<double>()));
  Run i = run("inspect " + pruned + " --json");
  REQUIRE(i.code == 0);
  CHECK(nlohmann::json::parse(i.out)["total_macs"] == report["result"]["macs_after"]);
}

TEST_CASE("compress train then compress eval on a dataset file", "[cli][train]") {
  const TempDir dir("cli_train");
  std::string train = make_set(dir, "quad_train.pt", 256, 1), test = make_set(dir, "quad_test.pt", 128, 2);
  std::string model = dir.file("cnn.pt");
  Run t = run("train --arch cnn --data " + train + " --test-data " + test +
              " --epochs 2 --batch-size 32 --lr 0.02 --quiet --json -o " + model);
  INFO(t.out);
  REQUIRE(t.code == 0);
  auto j = nlohmann::json::parse(t.out);
  CHECK(j["steps"] == 16);
  CHECK(j["macs"].get<int64_t>() > 0);
  REQUIRE(fs::exists(model));

  Run e = run("eval " + model + " --data " + test + " --json");
  INFO(e.out);
  REQUIRE(e.code == 0);
  auto k = nlohmann::json::parse(e.out);
  CHECK(k["count"] == 128);
  CHECK(k["top1"].get<double>() == Approx(j["test"]["top1"].get<double>()));
  CHECK(k["top1"].get<double>() > 0.5);  // chance is 0.25
  CHECK(k["confusion"]["matrix"].size() == 10);

  Run lat = run("eval " + model + " --data " + test + " --latency --latency-batches 1,4 --latency-threads 1 --repeats 3");
  INFO(lat.out);
  REQUIRE(lat.code == 0);
  CHECK_THAT(lat.out, Catch::Contains("latency: batch 4, 1 thread"));
}

TEST_CASE("compress prune shrinks a trained model and fine-tunes it on a dataset file", "[cli][prune]") {
  const TempDir dir("cli_prune");
  std::string train = make_set(dir, "prune_train.pt", 256, 3), test = make_set(dir, "prune_test.pt", 128, 4);
  std::string model = dir.file("cnn.pt"), pruned = dir.file("cnn.half.pt"), report = dir.file("report.json");
  REQUIRE(run("train --arch cnn --data " + train + " --epochs 2 --batch-size 32 --lr 0.02 --quiet -o " + model).code == 0);
  Run p = run("prune " + model + " -o " + pruned + " --input-shape 1,1,28,28 --target-macs 0.5 --round-to 4 --data " +
              test + " --recalibrate-bn 2 --finetune-epochs 2 --lr 0.02 --latency 1,8 --report " + report + " -q");
  INFO(p.out);
  REQUIRE(p.code == 0);
  std::ifstream f(report);
  auto j = nlohmann::json::parse(f);
  CHECK(j["result"]["macs_after"].get<double>() <= 0.5 * j["result"]["macs_before"].get<double>());
  CHECK(j["result"]["params_after"].get<int64_t>() < j["result"]["params_before"].get<int64_t>());
  CHECK(j["finetune_epochs"] == 2);
  CHECK(j["batch_norms_recalibrated"].get<int>() > 0);
  CHECK(j["file_bytes"]["after"].get<int64_t>() < j["file_bytes"]["before"].get<int64_t>());
  for (const char* batch : {"1", "8"}) {
    INFO(batch);
    CHECK(j["latency_ms"][batch]["before"].get<double>() > 0);
    CHECK(j["latency_ms"][batch]["after"].get<double>() > 0);
  }
  INFO(j.dump());
  check_pruned_model(pruned, test, j);
}

TEST_CASE("compress prune --distill fine-tunes under the unpruned model: it follows the teacher, not the labels",
          "[cli][prune][distill]") {
  const TempDir dir("cli_prune_distill");
  const std::string train = make_set(dir, "train.pt", 512, 3), test = make_set(dir, "test.pt", 256, 4);
  const std::string teacher = dir.file("teacher.pt");
  REQUIRE(run("train --arch cnn --data " + train + " --epochs 2 --batch-size 32 --lr 0.02 --threads 1 --quiet -o " + teacher)
              .code == 0);
  // The training images with every label 0: cross-entropy on them teaches
  // "always class 0"; pure KD (alpha 1) ignores the labels and keeps the teacher's answers.
  compress::data::TensorDataset constant = cli_test::quadrant_set(512, 3);
  constant.labels.zero_();
  const std::string zeros = dir.file("zeros.pt");
  compress::data::save_tensor_dataset(constant, zeros);
  auto prune_and_eval = [&](const std::string& extra, nlohmann::json& report) {
    const std::string out = dir.file("pruned.pt"), report_file = dir.file("report.json");
    Run p = run("prune " + teacher + " -o " + out + " --input-shape 1,1,28,28 --target-macs 0.5 --data " + zeros +
                " --finetune-epochs 3 --lr 0.05 --threads 1 --report " + report_file + " -q " + extra);
    INFO(p.out);
    REQUIRE(p.code == 0);
    report = nlohmann::json::parse(std::ifstream(report_file));
    Run e = run("eval " + out + " --data " + test + " --json");
    INFO(e.out);
    REQUIRE(e.code == 0);
    fs::remove(out);
    fs::remove(report_file);
    return nlohmann::json::parse(e.out)["top1"].get<double>();
  };
  nlohmann::json plain_report, kd_report;
  const double plain = prune_and_eval("", plain_report);
  const double kd = prune_and_eval("--distill --alpha 1 --temperature 2", kd_report);
  INFO("plain fine-tuning " << plain << ", distilled " << kd);
  CHECK(plain < 0.45);  // collapsed towards class 0 (a quarter of the test set)
  CHECK(kd > 0.9);      // the teacher's answers (chance is 0.25)
  CHECK_FALSE(plain_report.contains("distill"));
  REQUIRE(kd_report.contains("distill"));
  CHECK(kd_report["distill"]["teacher"] == teacher);
  CHECK(kd_report["distill"]["alpha"] == 1.0);
  CHECK(kd_report["distill"]["temperature"] == 2.0);
  CHECK(kd_report["distill"]["teacher_cached"] == true);
  CHECK(kd_report["distill"]["last_epoch_kd"].get<double>() > 0);
}

TEST_CASE("compress prune --iterative-steps 2 prunes half the MACs in two steps, fine-tuning after each", "[cli][prune]") {
  const TempDir dir("cli_prune_iterative");
  const std::string train = make_set(dir, "train.pt", 512, 3), test = make_set(dir, "test.pt", 256, 4);
  const std::string model = dir.file("cnn.pt");
  REQUIRE(run("train --arch cnn --data " + train + " --epochs 2 --batch-size 32 --lr 0.02 --threads 1 --quiet -o " + model)
              .code == 0);
  auto prune = [&](const std::string& extra, const std::string& out) {
    const std::string report = dir.file("report.json");
    Run p = run("prune " + model + " -o " + out + " --input-shape 1,1,28,28 --target-macs 0.5 --data " + train +
                " --recalibrate-bn 2 --finetune-epochs 2 --lr 0.02 --threads 1 --report " + report + " -q " + extra);
    INFO(p.out);
    REQUIRE(p.code == 0);
    nlohmann::json j = nlohmann::json::parse(std::ifstream(report));
    fs::remove(report);
    return j;
  };
  const std::string one_shot_out = dir.file("one.pt"), iterative_out = dir.file("iterative.pt");
  const nlohmann::json one_shot = prune("", one_shot_out);
  const nlohmann::json j = prune("--iterative-steps 2", iterative_out);
  INFO(j.dump(1));
  CHECK_FALSE(one_shot.contains("iterative_steps"));
  REQUIRE(j["iterative_steps"].size() == 2);
  // Step 1 keeps at most sqrt(0.5) of the MACs (but more than half), step 2 at most half of the input model's.
  const double first = j["iterative_steps"][0]["macs_kept"].get<double>(), second = j["iterative_steps"][1]["macs_kept"].get<double>();
  CHECK(first <= std::sqrt(0.5) + 1e-9);
  CHECK(first > 0.5);
  CHECK(second <= 0.5);
  for (const auto& s : j["iterative_steps"]) CHECK(s["finetune_epochs"] == 1);
  CHECK(j["result"]["macs_before"] == one_shot["result"]["macs_before"]);
  CHECK(j["result"]["macs_after"].get<double>() <= 0.5 * j["result"]["macs_before"].get<double>());
  CHECK(j["result"]["macs_after"] == j["iterative_steps"][1]["macs_after"]);
  // Widths are reported from the input model's to the last step's.
  std::map<std::string, int64_t> original_width;
  for (const auto& c : one_shot["result"]["groups"]) original_width[c["name"].get<std::string>()] = c["before"].get<int64_t>();
  REQUIRE(j["result"]["groups"].size() > 0);
  for (const auto& c : j["result"]["groups"]) {
    INFO(c.dump());
    REQUIRE(original_width.count(c["name"].get<std::string>()));
    CHECK(c["before"] == original_width[c["name"].get<std::string>()]);
    CHECK(c["after"].get<int64_t>() < c["before"].get<int64_t>());
  }
  check_pruned_model(iterative_out, train, j);
}

TEST_CASE("bad --distill and --iterative-steps options to compress prune: one line, exit code 2, nothing written", "[cli][prune][distill]") {
  const TempDir dir("cli_prune_distill_bad");
  const std::string data = make_set(dir, "data.pt", 64, 3), model = dir.file("cnn.pt"), out = dir.file("out.pt");
  compress::models::build("cnn", 1, 10, 0.25).module.save(model);
  const std::string four_classes = dir.file("four.pt");
  compress::models::build("cnn", 1, 4, 0.25).module.save(four_classes);
  const std::string base = "prune " + model + " -o " + out + " --input-shape 1,1,28,28 --target-macs 0.5 --threads 1 --data " +
                           data + " ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--distill", "--distill fine-tunes the pruned model under a teacher: it needs --finetune-epochs"},
      {"--teacher " + model, "it needs --finetune-epochs"},
      {"--finetune-epochs 1 --alpha 0.5", "--temperature and --alpha only apply to --distill"},
      {"--finetune-epochs 1 --distill --alpha 1.5", "--alpha must be in [0, 1], got 1.5"},
      {"--finetune-epochs 1 --distill --temperature 0", "--temperature must be a positive number, got 0"},
      {"--finetune-epochs 1 --teacher " + dir.file("missing.pt"), "missing.pt"},
      {"--finetune-epochs 1 --teacher " + four_classes, "teacher and student outputs differ in shape"},
      {"--finetune-epochs 2 --iterative-steps 0", "--iterative-steps must be at least 1, got 0"},
      {"--finetune-epochs 3 --iterative-steps 2", "--finetune-epochs must be a positive multiple of it, got 3"},
      {"--iterative-steps 2", "--finetune-epochs must be a positive multiple of it, got 0"},
  };
  {
    Run r = run("prune " + model + " -o " + out + " --input-shape 1,1,28,28 --ratio 0.5 --threads 1 --data " + data +
                " --finetune-epochs 2 --iterative-steps 2");
    INFO(r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_THAT(r.out, Catch::Contains("--iterative-steps splits a --target-macs budget into steps"));
    CHECK_FALSE(fs::exists(out));
  }
  for (const auto& [extra, message] : cases) {
    Run r = run(base + extra);
    INFO(extra << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_THAT(r.out, Catch::Contains(message));
    CHECK_FALSE(fs::exists(out));
  }
}

TEST_CASE("compress train --init M --reinit trains M's architecture from fresh weights", "[cli][train]") {
  const TempDir dir("cli_reinit");
  const std::string train = make_set(dir, "train.pt", 64, 3), test = make_set(dir, "test.pt", 32, 4);
  // Two models of one architecture with different weights.
  const std::string a = dir.file("a.pt"), b = dir.file("b.pt");
  compress::models::build("cnn", 1, 10, 0.25).module.save(a);
  compress::models::build("cnn", 2, 10, 0.25).module.save(b);
  auto weights = [&](const std::string& from, const std::string& extra) {
    const std::string out = dir.file("out.pt");
    Run r = run("train --init " + from + " --recipe cnn --data " + train + " --test-data " + test +
                " --epochs 1 --batch-size 32 --threads 1 --seed 5 --quiet " + extra + " -o " + out);
    INFO(r.out);
    REQUIRE(r.code == 0);
    std::vector<at::Tensor> w;
    for (const auto& p : torch::jit::load(out).named_parameters()) w.push_back(p.value.clone());
    fs::remove(out);
    return w;
  };
  auto same = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& y) {
    bool equal = x.size() == y.size();
    for (size_t i = 0; equal && i < x.size(); ++i) equal = x[i].sizes() == y[i].sizes() && at::equal(x[i], y[i]);
    return equal;
  };
  // With --reinit the starting weights no longer matter: a and b train alike.
  CHECK(same(weights(a, "--reinit"), weights(b, "--reinit")));
  CHECK_FALSE(same(weights(a, ""), weights(b, "")));

  Run bad = run("train --arch cnn --reinit --data " + train + " -o " + dir.file("x.pt"));
  INFO(bad.out);
  CHECK(bad.code == 2);
  CHECK(std::count(bad.out.begin(), bad.out.end(), '\n') == 1);
  CHECK_THAT(bad.out, Catch::Contains("--reinit needs --init MODEL"));
  CHECK_FALSE(fs::exists(dir.file("x.pt")));
}

TEST_CASE("bad input to train/eval: one line, exit code 2", "[cli][train]") {
  const TempDir dir("cli_train");
  const std::string missing = dir.file("missing.pt"), out = dir.file("x.pt");
  // Each command with the problem its one line must name.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --arch nosuch --data fashion-mnist -o " + out, "compress train: error: unknown architecture 'nosuch'"},
      {"train --arch cnn --data " + missing + " -o " + out, "compress train: error: " + missing + ": no such file"},
      {"train --arch cnn --data fashion-mnist", "compress train: error: -o/--output is required"},
      {"eval " + missing + " --data fashion-mnist", "compress eval: error: " + missing + ": no such file"},
      {"train --arch cnn --data fashion-mnist --resume -o " + out,
       "compress train: error: --resume needs --checkpoint FILE"}};
  for (const auto& [args, expect] : cases) {
    Run r = run(args);
    INFO(args << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_THAT(r.out, Catch::StartsWith(expect));
  }
  CHECK_FALSE(fs::exists(out));
}
