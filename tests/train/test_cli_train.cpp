// compress train / compress eval end to end on a tiny synthetic dataset file.
#include <catch2/catch.hpp>

#include <fstream>

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
  CHECK(j["accuracy_after"].get<double>() > 0.5);  // chance is 0.25
  Run e = run("eval " + pruned + " --data " + test + " --json");
  REQUIRE(e.code == 0);
  CHECK(nlohmann::json::parse(e.out)["top1"].get<double>() == Approx(j["accuracy_after"].get<double>()));
  // The pruned model remembers its input shape: no --input-shape needed to inspect it.
  Run i = run("inspect " + pruned + " --json");
  REQUIRE(i.code == 0);
  CHECK(nlohmann::json::parse(i.out)["total_macs"] == j["result"]["macs_after"]);
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
