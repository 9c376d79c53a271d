// compress sparsify from the command line: one-shot and AGP runs, mask files,
// inspect's sparsity table, and every kind of bad input answered with exit
// code 2, one line on stderr and nothing written.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compress/data/dataset.h"
#include "compress/io.h"
#include "compress/ir/import.h"
#include "compress/pruning/sparsity.h"
#include "sparse_models.h"
#include "temp_dir.h"
#include "test_paths.h"

using namespace compress;
using compress::testing::TempDir;
namespace fs = std::filesystem;

namespace {

struct CliResult {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CliResult cli(const TempDir& dir, const std::string& args) {
  CliResult r;
  const std::string out = dir.file("stdout.txt"), err = dir.file("stderr.txt");
  int status = std::system((std::string(COMPRESS_CLI) + " " + args + " > " + out + " 2> " + err).c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

// The MLP and a labelled tensor dataset for it, in `dir`.
struct Files {
  std::string model, data;
};
Files make_files(const TempDir& dir) {
  Files f{dir.file("mlp.pt"), dir.file("blobs.pt")};
  testing::sparse_mlp().save(f.model);
  data::save_tensor_dataset(testing::mlp_blobs(256, 1), f.data);
  return f;
}

std::map<std::string, at::Tensor> weights_of(const std::string& path) {
  std::map<std::string, at::Tensor> w;
  for (const auto& p : load_module(path).named_parameters(true)) w[p.name] = p.value;
  return w;
}

void check_refused(const CliResult& r, const std::string& expect, const std::vector<std::string>& not_written) {
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(expect) != std::string::npos);
  CHECK(r.err.find("Exception raised from") == std::string::npos);
  for (const auto& f : not_written) CHECK_FALSE(fs::exists(f));
}

}  // namespace

TEST_CASE("compress sparsify prunes 1x4 blocks one-shot and reports each layer", "[sparsity][cli]") {
  TempDir dir("sparsify");
  Files f = make_files(dir);
  const std::string out = dir.file("s.pt"), report = dir.file("r.json"), masks = dir.file("m.pt");
  CliResult r = cli(dir, "sparsify " + f.model + " -o " + out + " --sparsity 0.75 --pattern 1x4 --data " + f.data +
                             " --report " + report + " --save-masks " + masks);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("in 2 layers are zero (1x4, per layer)") != std::string::npos);
  CHECK(r.out.find("dense: fc1 (first layer") != std::string::npos);
  auto w = weights_of(out);
  for (const char* name : {"fc2.weight", "fc3.weight"}) {
    INFO(name);
    sparsity::WeightSparsity s = sparsity::measure(w.at(name));
    CHECK(s.block_sparsity == Approx(0.75).margin(0.01));
    CHECK(s.sparsity >= s.block_sparsity);
  }
  CHECK(sparsity::measure(w.at("fc1.weight")).zeros == 0);
  CHECK(sparsity::measure(w.at("fc4.weight")).zeros == 0);
  auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["layers"].size() == 2);
  CHECK(j["layers"][0]["name"] == "fc2");
  CHECK(j["skipped"].size() == 2);
  CHECK(j["options"]["pattern"] == "1x4");
  CHECK(j.contains("accuracy_before"));
  CHECK(j.contains("accuracy_after"));

  // The saved masks, applied to the original model, give the same weights.
  const std::string again = dir.file("again.pt");
  CliResult m = cli(dir, "sparsify " + f.model + " -o " + again + " --masks " + masks + " -q");
  INFO(m.err);
  REQUIRE(m.code == 0);
  CHECK(m.out.empty());
  auto w2 = weights_of(again);
  for (const auto& kv : w) CHECK(at::equal(kv.second, w2.at(kv.first)));

  // inspect shows the sparsity of each layer.
  CliResult ins = cli(dir, "inspect " + out + " --input-shape 2,16");
  REQUIRE(ins.code == 0);
  CHECK(ins.out.find("weights:") != std::string::npos);
  CHECK(ins.out.find("fc2") != std::string::npos);
  CHECK(ins.out.find("1x4 blocks  75.00% empty") != std::string::npos);
}

TEST_CASE("compress sparsify ramps 2:4 with AGP while fine-tuning and ends exactly 2:4", "[sparsity][cli]") {
  TempDir dir("sparsify_agp");
  Files f = make_files(dir);
  const std::string out = dir.file("s.pt"), report = dir.file("r.json");
  CliResult r = cli(dir, "sparsify " + f.model + " -o " + out + " --pattern 2:4 --include-first-last --data " + f.data +
                             " --finetune-epochs 2 --batch-size 32 --mask-updates 4 --threads 1 --quiet --report " + report);
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto j = nlohmann::json::parse(slurp(report));
  CHECK(j["options"]["schedule"] == "agp");
  CHECK(j["mask_updates"] == 4);
  CHECK(j["agp"]["total_steps"] == 16);
  CHECK(j["layers"].size() == 4);
  auto w = weights_of(out);
  for (const char* name : {"fc1.weight", "fc2.weight", "fc3.weight", "fc4.weight"}) {
    INFO(name);
    sparsity::WeightSparsity s = sparsity::measure(w.at(name));
    CHECK(s.two_of_four);
    CHECK(s.sparsity >= 0.5);
  }
}

TEST_CASE("compress sparsify refuses bad input with one line, exit 2 and nothing written", "[sparsity][cli]") {
  TempDir dir("sparsify_bad");
  Files f = make_files(dir);
  const std::string out = dir.file("s.pt"), report = dir.file("r.json");
  const std::string base = "sparsify " + f.model + " -o " + out + " --report " + report + " ";
  const std::vector<std::string> outputs = {out, report};
  check_refused(cli(dir, base + "--sparsity 1"), "sparsity 1 is outside [0, 1)", outputs);
  check_refused(cli(dir, base + "--sparsity -0.2"), "outside [0, 1)", outputs);
  check_refused(cli(dir, base + "--sparsity 0.5 --pattern 4x1"), "unknown sparsity pattern '4x1'", outputs);
  check_refused(cli(dir, base + "--sparsity 0.5 --pattern blocks"), "unknown sparsity pattern", outputs);
  check_refused(cli(dir, base + "--sparsity 0.7 --pattern 2:4"), "above what 2:4 allows", outputs);
  check_refused(cli(dir, base + "--pattern 2:4 --global"), "global ranking does not apply to 2:4", outputs);
  check_refused(cli(dir, base), "--sparsity F is required", outputs);
  check_refused(cli(dir, base + "--sparsity 0.5 --schedule agp"), "needs --data and --finetune-epochs", outputs);
  check_refused(cli(dir, base + "--sparsity 0.5 --schedule cubic --data " + f.data + " --finetune-epochs 1"),
                "unknown schedule", outputs);
  check_refused(cli(dir, base + "--sparsity 0.5 --finetune-epochs 1"), "--finetune-epochs needs --data", outputs);
  check_refused(cli(dir, base + "--sparsity 0.5 --exclude fc9"), "--exclude fc9: no conv or linear layer", outputs);
  check_refused(cli(dir, "sparsify " + f.model + " -o " + f.model + " --sparsity 0.5"), "would overwrite the input", {});
  check_refused(cli(dir, base + "--sparsity 0.5 --data nosuch.pt"), "nosuch.pt", outputs);

  // Masks that do not match the model: another shape, another name, not a mask file.
  Graph g = import_module(testing::sparse_mlp());
  sparsity::LayerSelection all;
  all.include_first_last = true;
  auto weights = sparsity::graph_weights(g, sparsity::select_layers(g, all));
  sparsity::Masks good = sparsity::magnitude_masks(weights, 0.5, sparsity::parse_pattern("unstructured"), false);
  sparsity::Masks shape = good;
  shape["fc2.weight"] = at::ones({48, 33}, at::kBool);
  sparsity::save_masks(shape, dir.file("shape.pt"));
  check_refused(cli(dir, base + "--masks " + dir.file("shape.pt")), "mask 'fc2.weight' has shape [48, 33]", outputs);
  sparsity::Masks name = {{"fc5.weight", good["fc2.weight"]}};
  sparsity::save_masks(name, dir.file("name.pt"));
  check_refused(cli(dir, base + "--masks " + dir.file("name.pt")), "mask 'fc5.weight' names no prunable", outputs);
  check_refused(cli(dir, base + "--masks " + f.model), "not a mask file", outputs);
  sparsity::save_masks(good, dir.file("good.pt"));
  check_refused(cli(dir, base + "--masks " + dir.file("good.pt") + " --sparsity 0.5"), "exclude each other", outputs);
}

TEST_CASE("the sparse INT8 example program prunes, fine-tunes and quantizes a small model", "[sparsity][example]") {
  TempDir dir("sparse_example");
  Files f = make_files(dir);
  const std::string out = dir.file("mlp.int8.pt");
  CliResult r;
  const std::string cmd = std::string(COMPRESS_BINARY_DIR) + "/examples/sparsity/example_sparse_int8 " + f.model + " " +
                          out + " " + f.data + " 0.75 > " + dir.file("o.txt") + " 2> " + dir.file("e.txt");
  int status = std::system(cmd.c_str());
  r.out = slurp(dir.file("o.txt"));
  INFO(r.out << slurp(dir.file("e.txt")));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(fs::exists(out));
  for (const char* layer : {"fc1: ", "fc2: ", "fc3: "}) {  // at least 75% of their 1x4 blocks are zero
    INFO(layer);
    const size_t at = r.out.find(layer);
    REQUIRE(at != std::string::npos);
    const size_t comma = r.out.find(", ", at);
    REQUIRE(comma != std::string::npos);
    CHECK(std::stod(r.out.substr(comma + 2)) >= 75.0);
  }
  CHECK(r.out.find("fc4: dense") != std::string::npos);  // the classifier: not pruned
  CHECK(r.out.find("test top-1: float sparse") != std::string::npos);
}

TEST_CASE("compress quantize --sparse packs a sparsified model sparse, inspect shows the format, a bad mode is refused", "[sparsity][cli]") {
  TempDir dir("sparse_quantize");
  Files f = make_files(dir);
  const std::string sparse = dir.file("s.pt"), int8 = dir.file("s.int8.pt"), report = dir.file("q.json");
  REQUIRE(cli(dir, "sparsify " + f.model + " -o " + sparse + " --sparsity 0.8 --pattern 1x4 -q").code == 0);
  CliResult q = cli(dir, "quantize " + sparse + " -o " + int8 + " --input-shape 8,16 --sparse 1x4 --report " + report);
  INFO(q.err);
  REQUIRE(q.code == 0);
  CHECK(q.out.find("fc2: sparse_1x4 (") != std::string::npos);
  auto j = nlohmann::json::parse(slurp(report));
  std::map<std::string, std::string> formats;
  for (const auto& l : j["layers"]) formats[l["name"].get<std::string>()] = l["weight_format"].get<std::string>();
  CHECK(formats["fc1"] == "sparse_1x4");  // forced: every layer the kernel takes, dense ones too
  CHECK(formats["fc2"] == "sparse_1x4");
  CliResult ins = cli(dir, "inspect " + int8 + " --input-shape 8,16");
  CHECK(ins.out.find("sparse_1x4") != std::string::npos);
  check_refused(cli(dir, "quantize " + sparse + " -o " + dir.file("x.pt") + " --input-shape 8,16 --sparse 3:4"),
                "--sparse 3:4: unknown mode", {dir.file("x.pt")});
}

TEST_CASE("compress quantize --sparse 1x4 runs a sparsified convnet's k x k convolutions sparse, equal to --sparse off", "[sparsity][cli]") {
  TempDir dir("sparse_conv_quantize");
  const std::string model = dir.file("convnet.pt"), sparse = dir.file("s.pt"), report = dir.file("q.json");
  const std::string int8_sparse = dir.file("s.int8.pt"), int8_dense = dir.file("d.int8.pt");
  testing::sparse_strided_convnet().save(model);
  REQUIRE(cli(dir, "sparsify " + model + " -o " + sparse + " --sparsity 0.8 --pattern 1x4 --include-first-last -q").code == 0);
  const std::string common = " --input-shape 2,3,9,9 --calib random";
  CliResult q = cli(dir, "quantize " + sparse + " -o " + int8_sparse + common + " --sparse 1x4 --report " + report);
  INFO(q.err);
  REQUIRE(q.code == 0);
  REQUIRE(cli(dir, "quantize " + sparse + " -o " + int8_dense + common + " --sparse off").code == 0);
  auto j = nlohmann::json::parse(slurp(report));
  std::map<std::string, std::string> formats;
  for (const auto& l : j["layers"]) formats[l["name"].get<std::string>()] = l["weight_format"].get<std::string>();
  for (const char* name : {"stem", "down", "block", "shrink", "fc"}) CHECK(formats[name] == "sparse_1x4");
  // inspect reads the format and the zeros back from the saved blobs.
  CliResult ins = cli(dir, "inspect " + int8_sparse + " --input-shape 2,3,9,9");
  CHECK(ins.out.find("compress::conv2d_int8_sparse x4") != std::string::npos);
  std::istringstream lines(ins.out);
  std::string line, block_line;
  while (std::getline(lines, line))
    if (line.rfind("  block ", 0) == 0) block_line = line;  // the weights table's row of the residual 3x3
  INFO(ins.out);
  CHECK(block_line.find("sparse_1x4") != std::string::npos);
  CHECK(block_line.find("% zero of 2,304") != std::string::npos);
  // The saved sparse and dense INT8 models compute the same codes.
  torch::jit::Module ms = torch::jit::load(int8_sparse), md = torch::jit::load(int8_dense);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  for (int i = 0; i < 3; ++i) {
    at::Tensor x = at::randn({2, 3, 9, 9}, gen);
    CHECK(at::equal(ms.forward({x}).toTensor(), md.forward({x}).toTensor()));
  }
}
