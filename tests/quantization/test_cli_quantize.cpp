// compress quantize from the command line: a run, its report, and each kind
// of bad input answered with exit code 2, one line, and no output file.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compress/data/dataset.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::testing;
namespace fs = std::filesystem;

namespace {

struct CliResult {
  int code = -1;
  std::string out, err;
};

CliResult quantize_cli(const std::string& args) {
  const std::string& dir = quant_scratch();
  CliResult r;
  r.code = run_command(std::string(COMPRESS_CLI) + " quantize " + args + " > " + dir + "/out.txt 2> " + dir + "/err.txt");
  r.out = slurp(dir + "/out.txt");
  r.err = slurp(dir + "/err.txt");
  return r;
}

const std::string& small_model() {
  static std::string path = [] {
    std::string p = quant_scratch() + "/small.pt";
    small_cnn().save(p);
    return p;
  }();
  return path;
}

std::string tensor_set(const std::string& name, at::Tensor inputs) {
  data::TensorDataset ds;
  ds.inputs = inputs;
  ds.labels = at::zeros({inputs.size(0)}, at::kLong);
  ds.num_classes = 10;
  std::string p = quant_scratch() + "/" + name;
  data::save_tensor_dataset(ds, p);
  return p;
}

void check_refused(const CliResult& r, const std::string& expect, const std::string& out) {
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(expect) != std::string::npos);
  CHECK(r.err.find("Exception raised from") == std::string::npos);
  CHECK_FALSE(fs::exists(out));
}

}  // namespace

TEST_CASE("compress quantize writes an INT8 model and a report", "[quant][cli]") {
  std::string out = quant_scratch() + "/small.int8.pt", report = quant_scratch() + "/report.json";
  torch::manual_seed(7);
  std::string calib = tensor_set("calib.pt", at::randn({20, 3, 16, 16}));
  CliResult r = quantize_cli(small_model() + " -o " + out + " --input-shape 4,3,16,16 --calib " + calib +
                             " --calib-batches 3 --method entropy --report " + report);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("4 of 4 conv/linear layers in INT8 (entropy calibration, 3 batches)") != std::string::npos);
  auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["int8_layers"] == 4);
  CHECK(j["layers"][1]["ops"] == "nn.Conv2d + aten::add + aten::relu");
  CHECK(j["layers"][1]["output"]["zero_point"] == 0);
  CHECK(j["output_sqnr_db"].get<double>() > 22.0);  // measured 25.75 dB (entropy, 3 batches of 4)
  CHECK(j["size"]["file_bytes_out"].get<int64_t>() == static_cast<int64_t>(fs::file_size(out)));
  // The report's size is the file's (save_module's archive: storage form, deflated).
  CHECK(j["size"]["bytes_after"] == j["size"]["file_bytes_out"]);
  CHECK(j["float_nodes"].empty());

  CliResult ex = quantize_cli(small_model() + " -o " + out + "2 --input-shape 4,3,16,16 --exclude dw --json");
  REQUIRE(ex.code == 0);
  auto k = nlohmann::json::parse(ex.out);
  CHECK(k["int8_layers"] == 3);
  CHECK(k["layers"][2]["reason"] == "excluded by the user (dw)");
}

TEST_CASE("compress quantize refuses bad input with one line and writes nothing", "[quant][cli]") {
  const std::string out = quant_scratch() + "/refused.pt";
  const std::string shape = " --input-shape 4,3,16,16";
  check_refused(quantize_cli(small_model() + " -o " + out + shape + " --calib " +
                             tensor_set("mnist_like.pt", at::rand({8, 1, 28, 28}))),
                "its samples are 1x28x28 but the model's input is 3x16x16", out);
  check_refused(quantize_cli(small_model() + " -o " + out + shape + " --calib fashion-mnist"),
                "--calib fashion-mnist: its samples are 1x28x28 but the model's input is 3x16x16", out);
  check_refused(quantize_cli(small_model() + " -o " + out + shape + " --calib " +
                             tensor_set("empty.pt", at::zeros({0, 3, 16, 16}))),
                "empty", out);
  check_refused(quantize_cli(small_model() + " -o " + out + shape + " --calib-batches 0"), "--calib-batches", out);
  check_refused(quantize_cli(small_model() + " -o " + out + shape + " --exclude layer9"),
                "exclude 'layer9': the model has no module or value of that name", out);
  check_refused(quantize_cli(small_model() + " -o " + out + shape + " --method kl"), "unknown calibration method 'kl'",
                out);
  std::string nan_model = quant_scratch() + "/nan.pt";
  small_cnn(/*nan_weight=*/true).save(nan_model);
  check_refused(quantize_cli(nan_model + " -o " + out + shape), "parameter 'fc.weight' holds NaN or Inf", out);
  check_refused(quantize_cli(small_model() + " -o " + out + " --input-shape 4,5,16,16"), "input channels", out);
  check_refused(quantize_cli(small_model() + " -o " + out), "--input-shape", out);
  for (const auto& e : fs::directory_iterator(quant_scratch()))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
}
