// The compressing commands on text models (token-id inputs): static INT8
// with synthesised calibration ids, structured pruning with its latency
// measurement, sparsity, evaluation and AMC, each with --input-dtype /
// --input-range, and the bad inputs of those options answered with one line.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "cli_check.h"
#include "compress/data/dataset.h"
#include "temp_dir.h"
#include "test_paths.h"
#include "test_util.h"
#include "two_inputs.h"

using compress::testing::check_bad_input;
using compress::testing::fixture;
using compress::testing::TempDir;
using compress::testing::two_input_model;

namespace {

// The shape and dtype the text fixtures take (a saved trace records neither).
const std::string kTokens = " --input-shape 4,12 --input-dtype int64";

compress::testing::CliResult run(const TempDir& dir, const std::string& args) {
  return compress::testing::run_cli(args, dir.file("stderr.txt"));
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

// A labelled set of token-id sequences (int64 [n, 12], ids < 100: the
// fixtures' embeddings have 100 rows), saved as a tensor data set.
std::string token_set(const TempDir& dir, int64_t n) {
  compress::data::TensorDataset ds;
  ds.inputs = at::randint(0, 100, {n, 12}, at::kLong);
  ds.labels = at::randint(0, 5, {n}, at::kLong);
  ds.num_classes = 5;
  ds.name = "tokens";
  const std::string path = dir.file("tokens.pt");
  compress::data::save_tensor_dataset(ds, path);
  return path;
}

}  // namespace

TEST_CASE("static quantize calibrates text models on synthesised token ids", "[sequence][cli][static]") {
  TempDir dir("seqcompress");
  // The EmbeddingBag MLP: both linear layers in INT8; the LSTM model: its classifier.
  for (const auto& [name, int8] : {std::pair<std::string, int>{"bag_text", 2}, {"lstm_text", 1}}) {
    INFO(name);
    const std::string out = dir.file(name + ".int8.pt"), report = dir.file(name + ".json");
    auto r = run(dir, "quantize " + fixture(name + ".pt") + " -o " + out + kTokens + " --calib random --report " + report);
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK(read_json(report)["int8_layers"].get<int>() == int8);
    // The INT8 model runs on valid ids and stays close to the float one.
    r = run(dir, "compare " + fixture(name + ".pt") + " " + out + " --input-shape 3,20 --input-dtype int64 --json");
    REQUIRE(r.code == 0);
    CHECK(nlohmann::json::parse(r.out)["max_rel_diff"].get<double>() < 0.1);
  }
  // A data set of ids calibrates as stored (int64), and so does a given id range.
  const std::string set = token_set(dir, 64);
  auto r = run(dir, "quantize " + fixture("bag_text.pt") + " -o " + dir.file("a.pt") + kTokens + " --calib " + set +
                        " --data " + set + " --holdout 32 --sensitivity");
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find("top-1") != std::string::npos);
  r = run(dir, "quantize " + fixture("bag_text.pt") + " -o " + dir.file("b.pt") + kTokens + " --input-range 0,10 -q");
  CHECK(r.code == 0);
  // Two inputs of different dtypes: random calibration synthesises both.
  const std::string two = two_input_model(dir);
  r = run(dir, "quantize " + two + " -o " + dir.file("two.int8.pt") + " --input-shape '4,8;4,5' --input-dtype float32,int64");
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("1 of 1 conv/linear layers in INT8") != std::string::npos);
}

TEST_CASE("bad input: static quantize with integer inputs", "[sequence][cli][static][bad-input]") {
  TempDir dir("seqcompress");
  const std::string bag = fixture("bag_text.pt"), out = dir.file("q.pt");
  check_bad_input(run(dir, "quantize " + bag + " -o " + out + " --input-shape 4,12 --input-dtype vector"),
                  "--input-dtype: 'vector' is not a tensor dtype");
  check_bad_input(run(dir, "quantize " + bag + " -o " + out + " --input-shape 4,12 --input-dtype int64,int32"),
                  "--input-dtype: 2 dtypes for 1 inputs");
  check_bad_input(run(dir, "quantize " + bag + " -o " + out + kTokens + " --input-range 0,101"),
                  "indexes an embedding of 100 rows");
  check_bad_input(run(dir, "quantize " + bag + " -o " + out), "--input-shape is required");
  const std::string two = two_input_model(dir), set = token_set(dir, 16);
  check_bad_input(run(dir, "quantize " + two + " -o " + out + " --input-shape '4,8;4,5' --input-dtype float32,int64 --calib " + set),
                  "a tensor data set holds one input per sample, but the model takes 2 inputs");
  CHECK(!std::ifstream(out).good());
}

TEST_CASE("prune and its latency measurement take token-id inputs", "[sequence][cli][prune]") {
  TempDir dir("seqcompress");
  const std::string out = dir.file("bag.pruned.pt"), report = dir.file("prune.json");
  auto r = run(dir, "prune " + fixture("bag_text.pt") + " -o " + out + kTokens + " --ratio 0.5 --latency 1,4 --report " + report);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  const auto j = read_json(report);
  CHECK(j["result"]["macs_after"].get<int64_t>() < j["result"]["macs_before"].get<int64_t>());
  CHECK(j["latency_ms"].contains("1"));
  CHECK(j["latency_ms"].contains("4"));
  CHECK(j["latency_ms"]["4"]["after"].get<double>() > 0);
  // The pruned model runs on ids, and a given range is checked against the embedding.
  r = run(dir, "inspect " + out + kTokens + " --json");
  REQUIRE(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["total_macs"].get<int64_t>() == j["result"]["macs_after"].get<int64_t>());
  check_bad_input(run(dir, "prune " + fixture("bag_text.pt") + " -o " + dir.file("x.pt") + kTokens + " --ratio 0.5 --input-range 50,200"),
                  "indexes an embedding of 100 rows");
  check_bad_input(run(dir, "prune " + fixture("bag_text.pt") + " -o " + dir.file("x.pt") + " --input-shape 4,12 --input-dtype int64,int64 --ratio 0.5"),
                  "--input-dtype: 2 dtypes for 1 inputs");
  check_bad_input(run(dir, "prune " + fixture("bag_text.pt") + " -o " + dir.file("x.pt") + " --input-shape 4,12 --input-dtype str --ratio 0.5"),
                  "--input-dtype: 'str' is not a tensor dtype");
  CHECK(!std::ifstream(dir.file("x.pt")).good());
}

TEST_CASE("sparsify, then static INT8, then run a text model", "[sequence][cli][sparsify]") {
  TempDir dir("seqcompress");
  const std::string sparse = dir.file("bag.sparse.pt"), q = dir.file("bag.sparse.int8.pt"), set = token_set(dir, 64);
  const std::string report = dir.file("sparsify.json");
  auto r = run(dir, "sparsify " + fixture("bag_text.pt") + " -o " + sparse + " --sparsity 0.5 --include-first-last --data " +
                        set + kTokens + " --report " + report);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("50.00% of") != std::string::npos);
  // Half the weights gone: the output moves, but measurably and finitely.
  const double change = read_json(report)["output_rel_change"].get<double>();
  CHECK(change > 0);
  CHECK(change < 10);
  check_bad_input(run(dir, "sparsify " + fixture("bag_text.pt") + " -o " + dir.file("x.pt") + " --sparsity 0.5 --input-shape 4,12 --input-dtype int64,int64"),
                  "--input-dtype: 2 dtypes for 1 inputs");
  check_bad_input(run(dir, "sparsify " + fixture("bag_text.pt") + " -o " + dir.file("x.pt") + " --sparsity 0.5" + kTokens + " --input-range 0,1000"),
                  "indexes an embedding of 100 rows");
  CHECK(!std::ifstream(dir.file("x.pt")).good());
  r = run(dir, "quantize " + sparse + " -o " + q + kTokens + " -q");
  REQUIRE(r.code == 0);
  r = run(dir, "eval " + q + " --data " + set + " --latency --latency-batches 1,8 --latency-threads 1 --repeats 3");
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("latency: batch 8, 1 thread") != std::string::npos);
}

TEST_CASE("amc searches a text model whose data are token ids", "[sequence][cli][amc]") {
  TempDir dir("seqcompress");
  const std::string set = token_set(dir, 160), ratios = dir.file("ratios.json");
  auto r = run(dir, "amc " + fixture("bag_text.pt") + " --data " + set + " --target-macs 0.6 --episodes 3 --warmup 2 "
                    "--val-size 32 --recalibrate-bn 0 -q -o " + ratios);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(!read_json(ratios).empty());
  check_bad_input(run(dir, "amc " + fixture("bag_text.pt") + " --data " + set + " --target-macs 0.6 --input-shape 1,12 "
                           "--input-dtype int64,int64 -o " + dir.file("r2.json")),
                  "--input-dtype: 2 dtypes for 1 inputs");
}
