// Quantization-aware training (qat.h): fake quantization at PTQ's rounding
// points, LSQ and STE training through the Trainer, and the conversion to
// real INT8 ops that computes what the fake-quant model computes.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compress/data/dataset.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/quantization/qat.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::testing;
namespace fs = std::filesystem;

namespace {

// Random images labelled by the float model (which therefore scores 100%).
data::TensorDataset labelled_by_float(int64_t n, double input_scale = 1.0) {
  torch::manual_seed(9);
  data::TensorDataset ds;
  ds.inputs = at::randn({n, 3, 16, 16}) * input_scale;
  torch::jit::Module m = small_cnn();
  torch::NoGradGuard no_grad;
  ds.labels = m.forward({ds.inputs}).toTensor().argmax(1);
  ds.num_classes = 10;
  return ds;
}

quant::Agreement fake_vs_int8(const quant::QatModel& qat, const data::TensorDataset& ds) {
  torch::jit::Module fake = export_module(qat.graph), real = export_module(quant::convert_qat(qat));
  return quant::compare_classifiers(fake, real, ds.inputs, ds.labels, 64);
}

train::TrainConfig quick_training(const quant::QatModel& qat) {
  train::TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 32;
  cfg.optimizer.lr = 0.01;
  cfg.schedule.kind = "constant";
  cfg.threads = 1;
  cfg.quiet = true;
  if (!qat.scale_names().empty()) cfg.optimizer.groups.push_back(qat.scale_group(0.01));
  return cfg;
}

}  // namespace

TEST_CASE("QAT puts fake quantization where the INT8 conversion rounds, and converts like PTQ", "[quant][qat]") {
  Graph g = small_cnn_graph();
  quant::CalibrationData calib = random_batches({4, 3, 16, 16}, 4);
  quant::QatModel qat = quant::prepare_qat(g, calib);
  auto ops = op_counts(qat.graph);
  // The model input, conv1 + relu, conv2 + add + relu, dw + relu6; the
  // residual (max_pool2d of conv1's codes) and the flatten are exact, the
  // classifier writes float.
  CHECK(ops["aten::_fake_quantize_learnable_per_tensor_affine"] == 4);
  CHECK(ops["aten::_fake_quantize_learnable_per_channel_affine"] == 4);
  CHECK(ops["aten::conv2d"] == 3);
  CHECK(ops["aten::linear"] == 1);
  CHECK(ops["nn.Conv2d"] + ops["nn.Linear"] + ops["nn.BatchNorm2d"] == 0);
  CHECK(qat.activations.size() == 4);
  CHECK(qat.weights.size() == 4);
  CHECK(qat.scale_names().size() == 8);  // lsq: every scale is trained
  CHECK(qat.scale_group(0.001).weight_decay == 0.0);

  // Untrained, the conversion is PTQ with the same calibration: the same model
  // up to weights whose rounding is a tie one way or the other.
  Graph ptq = g;
  quant::QuantizeOptions eight_bit;
  eight_bit.activations = "u8";  // as QAT's parameters (auto would pick 7 bits on AVX2)
  quant::quantize_static(ptq, calib, eight_bit);
  Graph converted = quant::convert_qat(qat);
  auto int8_ops = op_counts(converted);
  CHECK(int8_ops["compress::conv2d_int8"] == 3);
  CHECK(int8_ops["compress::linear_int8"] == 1);
  torch::jit::Module a = export_module(ptq), b = export_module(converted);
  torch::NoGradGuard no_grad;
  at::Tensor x = random_batches({16, 3, 16, 16}, 1).batch(0);
  quant::Sqnr same;
  same.add(a.forward({x}).toTensor(), b.forward({x}).toTensor());
  INFO("PTQ vs untrained QAT conversion: " << same.db() << " dB");
  CHECK(same.db() > 60.0);  // measured: identical (inf)

  // The fake-quant model and its conversion agree (measured: every argmax, logit SQNR 139 dB).
  quant::Agreement agree = fake_vs_int8(qat, labelled_by_float(256));
  INFO(agree.to_json().dump());
  CHECK(agree.argmax_agree >= 0.99);
  CHECK(agree.logit_sqnr_db > 50.0);
}

TEST_CASE("LSQ trains the scales with the Trainer and the INT8 model matches the fake-quant one", "[quant][qat]") {
  quant::QatModel qat = quant::prepare_qat(small_cnn_graph(), random_batches({4, 3, 16, 16}, 4));
  const Graph before = qat.graph;
  data::TensorDataset ds = labelled_by_float(256);
  train::Trainer trainer(export_module(qat.graph, quant::qat_export_options(qat)), quick_training(qat));
  trainer.add_callback(quant::qat_callback(qat));
  train::TrainResult res = trainer.fit(ds);
  CHECK(res.steps == 16);
  quant::load_trained(qat, trainer.module());
  int moved = 0;
  for (const auto& name : qat.scale_names()) moved += !at::equal(before.param(name), qat.graph.param(name));
  CHECK(moved == 8);
  for (const auto& a : qat.activations)  // zero points stay at their calibrated values
    CHECK(at::equal(before.param(a.zero_point), qat.graph.param(a.zero_point)));
  CHECK_FALSE(at::equal(before.param("conv1.weight"), qat.graph.param("conv1.weight")));

  // Measured: every argmax, logit SQNR 80 dB.
  quant::Agreement agree = fake_vs_int8(qat, ds);
  INFO(agree.to_json().dump());
  CHECK(agree.argmax_agree >= 0.99);
  CHECK(agree.logit_sqnr_db > 50.0);
  CHECK(std::abs(agree.top1_a - agree.top1_b) <= 1.0);  // at most 2 of 256 samples
}

TEST_CASE("STE keeps weight scales at max|w|/127 and moves activation ranges, then converts exactly",
          "[quant][qat]") {
  quant::QatOptions o;
  o.method = quant::QatMethod::Ste;
  o.ema_momentum = 0.2;
  quant::QatModel qat = quant::prepare_qat(small_cnn_graph(), random_batches({4, 3, 16, 16}, 4), o);
  CHECK(qat.scale_names().empty());  // nothing for the optimizer
  CHECK(quant::qat_export_options(qat).taps.size() == 3);  // every point but the model input
  const Graph before = qat.graph;
  data::TensorDataset ds = labelled_by_float(256);
  train::Trainer trainer(export_module(qat.graph, quant::qat_export_options(qat)), quick_training(qat));
  trainer.add_callback(quant::qat_callback(qat));
  trainer.fit(ds);
  quant::load_trained(qat, trainer.module());
  for (const auto& w : qat.weights) {
    INFO(w.layer);
    CHECK(at::allclose(qat.graph.param(w.scale), quant::quantize_weight_per_channel(qat.graph.param(w.weight)).scale,
                       0, 0));
  }
  CHECK(at::equal(before.param(qat.activations[0].scale), qat.graph.param(qat.activations[0].scale)));
  for (size_t k = 1; k < qat.activations.size(); ++k)
    CHECK_FALSE(at::equal(before.param(qat.activations[k].scale), qat.graph.param(qat.activations[k].scale)));
  // relu6: the running range stays inside [0, 6].
  const auto& dw = qat.activations[3];
  CHECK(dw.clamp_hi == 6.0);
  CHECK(qat.graph.param(dw.scale).item<double>() * 255 <= 6.0 + 1e-5);

  // Measured: every argmax, logit SQNR 68 dB.
  quant::Agreement agree = fake_vs_int8(qat, ds);
  INFO(agree.to_json().dump());
  CHECK(agree.argmax_agree >= 0.99);
  CHECK(agree.logit_sqnr_db > 50.0);
}

TEST_CASE("a trained range wider than relu6's bound becomes the kernel's largest code", "[quant][qat]") {
  quant::QatModel qat = quant::prepare_qat(small_cnn_graph(), random_batches({4, 3, 16, 16}, 4));
  const auto& dw = qat.activations[3];
  REQUIRE(dw.clamp_hi == 6.0);
  qat.graph.set_param(dw.scale, at::full({1}, 0.05f));  // codes would reach 12.75
  Graph converted = quant::convert_qat(qat);
  int64_t quant_max = -1;
  for (const Node& n : converted.nodes())
    if (n.op_name() == "compress::conv2d_int8" && converted.name_of(n.output()) == "dw:int8") quant_max = n.inputs().back().constant.toInt();
  CHECK(quant_max == 120);  // 6 / 0.05
  // Inputs scaled up so that many values pass 6.
  quant::Agreement agree = fake_vs_int8(qat, labelled_by_float(128, 4.0));
  INFO(agree.to_json().dump());
  CHECK(agree.argmax_agree >= 0.99);
  CHECK(agree.logit_sqnr_db > 50.0);
}

TEST_CASE("QAT refuses bad input", "[quant][qat]") {
  CHECK_THROWS_WITH(quant::parse_qat_method("adam"), Catch::Contains("unknown QAT method 'adam' (lsq or ste)"));
  CHECK_THROWS_WITH(quant::prepare_qat(small_cnn_graph(), quant::CalibrationData{}),
                    Catch::Contains("calibration set is empty"));
  Graph nan = import_module(small_cnn(/*nan_weight=*/true));
  nan.set_example_inputs({InputSpec{{4, 3, 16, 16}}});
  CHECK_THROWS_WITH(quant::prepare_qat(nan, random_batches({4, 3, 16, 16}, 2)),
                    Catch::Contains("parameter 'fc.weight' holds NaN or Inf"));
  quant::QatModel qat = quant::prepare_qat(small_cnn_graph(), random_batches({4, 3, 16, 16}, 2));
  CHECK_THROWS_WITH(quant::load_trained(qat, small_cnn()), Catch::Contains("has no parameter or buffer"));
  torch::jit::Module m = small_cnn();
  CHECK_THROWS_WITH(quant::compare_classifiers(m, m, at::zeros({4, 3, 16, 16}), at::zeros({3}, at::kLong)),
                    Catch::Contains("different lengths"));
}

TEST_CASE("compress qat trains, converts, reports the agreement, and refuses bad input", "[quant][qat][cli]") {
  const std::string& dir = quant_scratch();
  const std::string model = dir + "/small.pt", set = dir + "/set.pt", out = dir + "/qat.int8.pt",
                    report = dir + "/qat.json";
  small_cnn().save(model);
  data::save_tensor_dataset(labelled_by_float(192), set);
  auto cli = [&](const std::string& args) {
    return run_command(std::string(COMPRESS_CLI) + " qat " + args + " > " + dir + "/out.txt 2> " + dir + "/err.txt");
  };
  int code = cli(model + " -o " + out + " --data " + set +
                 " --epochs 1 --batch-size 32 --calib-batches 2 --threads 1 --lr 0.01 --report " + report);
  INFO(slurp(dir + "/err.txt"));
  REQUIRE(code == 0);
  std::string text = slurp(dir + "/out.txt");
  INFO(text);
  CHECK(text.find("QAT (lsq, 1 epochs") != std::string::npos);
  CHECK(text.find("INT8 vs fake-quant: argmax agrees on") != std::string::npos);
  auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["method"] == "lsq");
  CHECK(j["int8_layers"] == 4);
  CHECK(j["training"]["steps"] == 6);
  CHECK(j["agreement"]["argmax_agree"].get<double>() >= 0.99);
  CHECK(j["test"]["float_top1"].get<double>() == Approx(100.0));
  CHECK(j["size"]["file_bytes_out"].get<int64_t>() == static_cast<int64_t>(fs::file_size(out)));
  CHECK(j["size"]["ratio"].get<double>() < 1.0);
  // The written model is the INT8 one and runs.
  Graph written = import_module(load_module(out));
  CHECK(op_counts(written)["compress::conv2d_int8"] == 3);

  const std::string refused = dir + "/refused.pt";
  auto check_refused = [&](const std::string& args, const std::string& expect) {
    int c = cli(args);
    std::string err = slurp(dir + "/err.txt");
    INFO(args << " -> " << err);
    CHECK(c == 2);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    CHECK(err.find(expect) != std::string::npos);
    CHECK(err.find("Exception raised from") == std::string::npos);
    CHECK_FALSE(fs::exists(refused));
  };
  const std::string base = model + " -o " + refused;
  check_refused(base, "--data is required");
  check_refused(base + " --data " + set + " --epochs 0", "--epochs must be at least 1");
  check_refused(base + " --data " + set + " --method adam", "unknown QAT method 'adam'");
  check_refused(base + " --data " + set + " --lr 0", "--lr and --scale-lr must be positive");
  check_refused(base + " --data " + set + " --calib-method kl", "unknown calibration method 'kl'");
  check_refused(base + " --data fashion-mnist --limit 64", "--data fashion-mnist: its samples do not fit the model");
  check_refused(base + " --data " + dir + "/none.pt", "none.pt");
  data::TensorDataset empty;
  empty.inputs = at::zeros({0, 3, 16, 16});
  empty.labels = at::zeros({0}, at::kLong);
  empty.num_classes = 10;
  data::save_tensor_dataset(empty, dir + "/empty.pt");
  check_refused(base + " --data " + dir + "/empty.pt", "empty");
  check_refused(dir + "/missing.pt -o " + refused + " --data " + set, "missing.pt");
  check_refused(model + " -o " + model + " --data " + set, "would overwrite the input model");
  std::string nan_model = dir + "/nan.pt";
  small_cnn(/*nan_weight=*/true).save(nan_model);
  check_refused(nan_model + " -o " + refused + " --data " + set, "parameter 'fc.weight' holds NaN or Inf");
}

TEST_CASE("the PTQ and QAT example programs run on a small model", "[quant][qat][examples]") {
  const std::string& dir = quant_scratch();
  const std::string model = dir + "/small.pt", set = dir + "/set.pt", out = dir + "/example.int8.pt";
  small_cnn().save(model);
  // The examples calibrate with batches of 64: the set holds two of them.
  data::save_tensor_dataset(labelled_by_float(128), set);
  const std::string bin = std::string(COMPRESS_BINARY_DIR) + "/examples/quantization/";
  REQUIRE(run_command(bin + "example_ptq " + model + " " + out + " " + set + " > " + dir + "/ptq.txt 2>&1") == 0);
  std::string ptq = slurp(dir + "/ptq.txt");
  INFO(ptq);
  CHECK(ptq.find("test top-1: float 100%, INT8 ") != std::string::npos);
  CHECK(op_counts(import_module(load_module(out)))["compress::conv2d_int8"] == 3);
  fs::remove(out);

  REQUIRE(run_command(bin + "example_qat " + model + " " + out + " " + set + " 1 > " + dir + "/qat.txt 2>&1") == 0);
  std::string qat = slurp(dir + "/qat.txt");
  INFO(qat);
  CHECK(qat.find("argmax agrees on 100% of 128 samples") != std::string::npos);
  CHECK(op_counts(import_module(load_module(out)))["compress::conv2d_int8"] == 3);
  CHECK(run_command(bin + "example_qat " + model + " " + out + " " + dir + "/none.pt > /dev/null 2>&1") == 2);
}
