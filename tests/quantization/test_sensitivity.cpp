// Per-layer sensitivity and accuracy-driven fallback (sensitivity.h), from
// C++ and from `compress quantize --sensitivity / --max-drop`.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compress/data/dataset.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/quantization/sensitivity.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::testing;
namespace fs = std::filesystem;

namespace {

// Inputs on which the float model barely prefers its top class (the 120 of
// 1500 random images with the smallest top-2 logit margin), labelled with
// that class: the float model scores 100%, and quantization noise flips some.
data::TensorDataset borderline_set() {
  torch::manual_seed(5);
  at::Tensor x = at::randn({1500, 3, 16, 16});
  torch::jit::Module m = small_cnn();
  torch::NoGradGuard no_grad;
  at::Tensor logits = m.forward({x}).toTensor();
  auto top2 = logits.topk(2, 1);
  at::Tensor margin = std::get<0>(top2).select(1, 0) - std::get<0>(top2).select(1, 1);
  at::Tensor pick = margin.argsort().narrow(0, 0, 120);
  data::TensorDataset ds;
  ds.inputs = x.index_select(0, pick).contiguous();
  ds.labels = std::get<1>(top2).select(1, 0).index_select(0, pick).contiguous();
  ds.num_classes = 10;
  return ds;
}

}  // namespace

TEST_CASE("sensitivity quantizes one layer at a time and measures SQNR and top-1", "[quant][sensitivity]") {
  Graph g = small_cnn_graph();
  const std::string before = g.to_string();
  data::TensorDataset eval = borderline_set();
  quant::SensitivityReport s = quant::analyze_sensitivity(g, random_batches({4, 3, 16, 16}, 4), {}, &eval);
  INFO(s.to_json().dump(2));
  CHECK(g.to_string() == before);  // the caller's graph is left alone
  REQUIRE(s.layers.size() == 4);
  CHECK(s.layers[1].name == "conv2");
  CHECK(s.layers[1].ops == "nn.Conv2d + aten::add + aten::relu");
  CHECK(s.eval_samples == 120);
  CHECK(s.float_top1 == Approx(100.0));
  CHECK(s.int8_top1 < 100.0);  // borderline samples flip under the whole model's noise
  for (const auto& l : s.layers) {
    INFO(l.name);
    // One layer's noise alone is below all layers' noise together.
    CHECK(l.sqnr_db > s.int8_sqnr_db);
    CHECK(std::isfinite(l.sqnr_db));
    CHECK(l.top1_drop == Approx(s.float_top1 - l.top1));
  }
  std::vector<std::string> rank = s.most_sensitive_first();
  REQUIRE(rank.size() == 4);
  for (size_t i = 0; i + 1 < rank.size(); ++i) {
    auto drop = [&](const std::string& n) {
      for (const auto& l : s.layers)
        if (l.name == n) return l.top1_drop;
      return -1.0;
    };
    CHECK(drop(rank[i]) >= drop(rank[i + 1]));
  }

  // Without labelled data: SQNR only.
  quant::SensitivityReport t = quant::analyze_sensitivity(g, random_batches({4, 3, 16, 16}, 4), {});
  CHECK(t.eval_samples == 0);
  CHECK(std::isnan(t.layers[0].top1));
  CHECK(t.layers[0].sqnr_db == Approx(s.layers[0].sqnr_db));
}

TEST_CASE("fallback keeps the most sensitive layers in float until the drop is within budget", "[quant][sensitivity]") {
  data::TensorDataset eval = borderline_set();
  quant::CalibrationData calib = random_batches({4, 3, 16, 16}, 4);

  // A generous budget: nothing is kept in float.
  Graph g = small_cnn_graph();
  quant::FallbackReport loose;
  quant::QuantizeReport r = quant::quantize_with_fallback(g, calib, {}, eval, 100.0, loose);
  CHECK(loose.kept_float.empty());
  CHECK(loose.steps.size() == 1);
  int int8 = 0;
  for (const auto& l : r.layers) int8 += l.precision == "int8";
  CHECK(int8 == 4);

  // No drop allowed: layers go back to float, most sensitive first, until none is lost.
  Graph h = small_cnn_graph();
  quant::FallbackReport strict;
  quant::QuantizeReport rs = quant::quantize_with_fallback(h, calib, {}, eval, 0.0, strict);
  INFO(strict.to_json().dump(2));
  REQUIRE(strict.steps.size() >= 2);  // the whole INT8 model loses borderline samples
  CHECK(strict.steps[0].top1_drop > 0.0);
  CHECK(strict.top1_drop <= 0.0);
  for (size_t i = 0; i + 1 < strict.steps.size(); ++i) CHECK(strict.steps[i].top1_drop > 0.0);
  std::vector<std::string> rank = strict.sensitivity.most_sensitive_first();
  REQUIRE(strict.kept_float.size() == strict.steps.size() - 1);
  for (size_t i = 0; i < strict.kept_float.size(); ++i) CHECK(strict.kept_float[i] == rank[i]);
  for (const auto& l : rs.layers) {
    bool kept = std::find(strict.kept_float.begin(), strict.kept_float.end(), l.name) != strict.kept_float.end();
    CHECK(l.precision == (kept ? "float" : "int8"));
    if (kept) CHECK(l.reason == "kept in float by the accuracy fallback (max drop 0.00 points)");
  }
  // The converted graph scores what the fallback measured.
  torch::jit::Module m = export_module(h);
  torch::NoGradGuard no_grad;
  at::Tensor pred = m.forward({eval.inputs}).toTensor().argmax(1);
  double top1 = pred.eq(eval.labels).to(at::kDouble).mean().item<double>() * 100.0;
  CHECK(top1 == Approx(strict.top1));

  CHECK_THROWS_WITH(quant::quantize_with_fallback(h, calib, {}, data::TensorDataset{}, 0.3, strict),
                    Catch::Contains("held-out set for accuracy is empty"));
  Graph k = small_cnn_graph();
  CHECK_THROWS_WITH(quant::quantize_with_fallback(k, calib, {}, eval, -1.0, strict),
                    Catch::Contains("max-drop must be a non-negative"));
}

TEST_CASE("compress quantize --sensitivity and --max-drop report per layer and say what stays float",
          "[quant][sensitivity][cli]") {
  const std::string& dir = quant_scratch();
  const std::string model = dir + "/small.pt", labelled = dir + "/labelled.pt", out = dir + "/s.int8.pt",
                    report = dir + "/s.json";
  small_cnn().save(model);
  data::save_tensor_dataset(borderline_set(), labelled);
  auto cli = [&](const std::string& args) {
    return run_command(std::string(COMPRESS_CLI) + " quantize " + model + " --input-shape 4,3,16,16 " + args + " > " +
                       dir + "/out.txt 2> " + dir + "/err.txt");
  };
  REQUIRE(cli("-o " + out + " --sensitivity --report " + report) == 0);
  std::string text = slurp(dir + "/out.txt");
  INFO(text);
  CHECK(text.find("sensitivity (one layer in INT8 at a time):") != std::string::npos);
  CHECK(text.find("conv2") != std::string::npos);
  auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["sensitivity"]["layers"].size() == 4);
  CHECK(j["sensitivity"]["layers"][0]["top1"].is_null());

  REQUIRE(cli("-o " + out + " --data " + labelled + " --holdout 120 --max-drop 0 --report " + report) == 0);
  text = slurp(dir + "/out.txt");
  CHECK(text.find("top-1 on 120 held-out samples") != std::string::npos);
  CHECK(text.find("fallback (max drop 0.00 points): kept in float: ") != std::string::npos);
  j = nlohmann::json::parse(slurp(report));
  REQUIRE(j.contains("fallback"));
  CHECK(j["fallback"]["top1_drop"].get<double>() <= 0.0);
  CHECK(!j["fallback"]["kept_float"].empty());
  CHECK(j["int8_layers"].get<int>() == 4 - static_cast<int>(j["fallback"]["kept_float"].size()));
  CHECK(j["held_out"] == "the last 120 samples of " + labelled + " (training split)");

  // Bad input: one line, exit 2, nothing written.
  const std::string refused = dir + "/refused.pt";
  auto check_refused = [&](const std::string& args, const std::string& expect) {
    int code = cli("-o " + refused + " " + args);
    std::string err = slurp(dir + "/err.txt");
    INFO(args << " -> " << err);
    CHECK(code == 2);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    CHECK(err.find(expect) != std::string::npos);
    CHECK_FALSE(fs::exists(refused));
  };
  check_refused("--max-drop 0.3", "--max-drop needs --data");
  check_refused("--max-drop -1 --data " + labelled, "--max-drop must be a non-negative");
  check_refused("--sensitivity --data fashion-mnist", "--data fashion-mnist: its samples are 1x28x28");
  check_refused("--sensitivity --data " + labelled + " --holdout 0", "--holdout must be at least 1");
  check_refused("--sensitivity --data " + dir + "/missing.pt", "missing.pt");
}
