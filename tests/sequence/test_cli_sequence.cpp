// The CLI with sequence models: integer and multiple inputs in every command
// that runs a model, quantize --dynamic, and bad input answered with one line.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "cli_check.h"
#include "temp_dir.h"
#include "test_paths.h"
#include "test_util.h"
#include "two_inputs.h"

using compress::testing::fixture;
using compress::testing::TempDir;
using compress::testing::two_input_model;

// The input the text fixtures were traced with (a saved trace keeps no shapes).
const std::string kTokens = " --input-shape 2,12 --input-dtype int64";

namespace {

using Result = compress::testing::CliResult;
using compress::testing::check_bad_input;

Result run(const TempDir& dir, const std::string& args) { return compress::testing::run_cli(args, dir.file("stderr.txt")); }

}  // namespace

TEST_CASE("inspect takes integer inputs of any shape and counts recurrent MACs", "[sequence][cli]") {
  TempDir dir("seqcli");
  auto r = run(dir, "inspect " + fixture("lstm_text.pt") + kTokens + " --json");
  REQUIRE(r.code == 0);
  auto j = nlohmann::json::parse(r.out);
  const int64_t traced = j["total_macs"].get<int64_t>();
  CHECK(traced == 2 * 12 * (4 * 32 * 16 + 4 * 32 * 32) + 2 * 32 * 5);
  r = run(dir, "inspect " + fixture("lstm_text.pt") + " --input-shape 4,12 --input-dtype int64 --json");
  REQUIRE(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["total_macs"].get<int64_t>() == 2 * traced);
  // Every traced sequence classifier goes through inspect.
  for (std::string name : {"gru_text", "gru_conv1d_text", "transformer_text", "bag_text", "text_model"}) {
    INFO(name);
    r = run(dir, "inspect " + fixture(name + ".pt") + " --input-shape 3,9 --input-dtype int32");
    CHECK(r.code == 0);
  }
}

TEST_CASE("two inputs of different dtypes in inspect and compare", "[sequence][cli]") {
  TempDir dir("seqcli");
  const std::string model = two_input_model(dir);
  auto r = run(dir, "inspect " + model + " --input-shape 2,8 --input-shape 2,5 --input-dtype float32,int64 --json");
  REQUIRE(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["input_shapes"].size() == 2);
  r = run(dir, "compare " + model + " " + model + " --input-shape '2,8;2,5' --input-dtype float32 --input-dtype int64");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("(identical)") != std::string::npos);
  r = run(dir, "compare " + model + " " + model + " --input-shape '2,8;2,5' --input-dtype float32,int64 --input-range 0,50");
  CHECK(r.code == 0);
}

TEST_CASE("bad input: --input-dtype that is no dtype, or a count that fits no input", "[sequence][cli][bad-input]") {
  TempDir dir("seqcli");
  check_bad_input(run(dir, "inspect " + fixture("lstm_text.pt") + " --input-shape 2,12 --input-dtype tensor"),
                  "--input-dtype: 'tensor' is not a tensor dtype");
  check_bad_input(run(dir, "inspect " + fixture("lstm_text.pt") + " --input-shape 2,12 --input-dtype int64,int64,int64"),
                  "--input-dtype: 3 dtypes for 1 inputs");
  const std::string model = two_input_model(dir);
  check_bad_input(run(dir, "inspect " + model + " --input-shape 2,8 --input-shape 2,5 --input-dtype float32,int64,int64"),
                  "--input-dtype: 3 dtypes for 2 inputs");
  check_bad_input(run(dir, "compare " + model + " " + model + " --input-shape 2,8"), "the model takes 2 input(s) but 1 input shape(s) were given");
  check_bad_input(run(dir, "quantize --dynamic " + fixture("lstm_text.pt") + " -o " + dir.file("q.pt") +
                               " --input-shape 2,12 --input-dtype float64x"),
                  "is not a tensor dtype");
  CHECK(!std::ifstream(dir.file("q.pt")).good());
}

TEST_CASE("bad input: integer inputs outside the embedding's rows", "[sequence][cli][bad-input]") {
  TempDir dir("seqcli");
  const std::string m = fixture("lstm_text.pt");
  check_bad_input(run(dir, "compare " + m + " " + m + kTokens + " --input-range 0,500"),
                  "indexes an embedding of 100 rows");
  check_bad_input(run(dir, "inspect " + m + kTokens + " --input-range 0,101"), "indexes an embedding of 100 rows");
  check_bad_input(run(dir, "compare " + m + " " + m + kTokens + " --input-range 9"), "--input-range: '9' is not LO,HI");
  check_bad_input(run(dir, "compare " + m + " " + m + kTokens + " --input-range 5,5"), "0 <= LO < HI");
  auto r = run(dir, "compare " + m + " " + m + kTokens + " --input-range 10,100");
  CHECK(r.code == 0);
}

TEST_CASE("quantize --dynamic: a traced LSTM classifier in INT8, loaded by C++ and Python", "[sequence][cli][dynamic]") {
  TempDir dir("seqcli");
  const std::string out = dir.file("lstm.int8.pt"), report = dir.file("report.json");
  auto r = run(dir, "quantize --dynamic " + fixture("lstm_text.pt") + " -o " + out + kTokens + " --no-measure --report " + report);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("2 of 2 Linear/LSTM/GRU layers in dynamic INT8") != std::string::npos);
  std::ifstream rf(report);
  auto j = nlohmann::json::parse(rf);
  CHECK(j["int8_layers"] == 2);
  // compare: the INT8 model against the float one on valid token ids.
  r = run(dir, "compare " + fixture("lstm_text.pt") + " " + out + kTokens + " --json");
  REQUIRE(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["max_rel_diff"].get<double>() < 0.05);
  // Python: torch.ops.load_library, then the fixture's input.
  const std::string script = dir.file("check.py");
  std::ofstream(script) << "import sys, torch\n"
                           "torch.ops.load_library(sys.argv[1])\n"
                           "m = torch.jit.load(sys.argv[2]).eval()\n"
                           "x = torch.jit.load(sys.argv[3]).value\n"
                           "y = torch.jit.load(sys.argv[4]).value\n"
                           "with torch.no_grad():\n"
                           "    d = (m(x) - y).abs().max().item()\n"
                           "print('maxdiff', d)\n"
                           "sys.exit(0 if d < 0.05 * y.abs().max().item() else 1)\n";
  const std::string cmd = std::string(COMPRESS_SYSTEM_PYTHON) + " " + script + " " + COMPRESS_BINARY_DIR +
                          "/src/ops/libcompress_ops.so " + out + " " + fixture("lstm_text.input.pt") + " " +
                          fixture("lstm_text.output.pt") + " > " + dir.file("py.txt") + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream pf(dir.file("py.txt"));
  std::stringstream ps;
  ps << pf.rdbuf();
  INFO(ps.str());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("quantize --dynamic and convert take every traced sequence classifier", "[sequence][cli][dynamic]") {
  TempDir dir("seqcli");
  for (std::string name : {"lstm_text", "gru_text", "gru_conv1d_text", "transformer_text", "bag_text"}) {
    INFO(name);
    auto r = run(dir, "convert " + fixture(name + ".pt") + " -o " + dir.file(name + ".conv.pt"));
    REQUIRE(r.code == 0);
    // The converted model runs and computes what the traced one does.
    r = run(dir, "compare " + fixture(name + ".pt") + " " + dir.file(name + ".conv.pt") + kTokens + " --json");
    REQUIRE(r.code == 0);
    CHECK(nlohmann::json::parse(r.out)["max_abs_diff"].get<double>() < 1e-5);
    r = run(dir, "quantize --dynamic " + fixture(name + ".pt") + " -o " + dir.file(name + ".q.pt") + kTokens + " --threads 1");
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("float ") != std::string::npos);  // measured times are printed
    r = run(dir, "compare " + fixture(name + ".pt") + " " + dir.file(name + ".q.pt") + " --input-shape 3,20 --input-dtype int64 --json");
    REQUIRE(r.code == 0);
    CHECK(nlohmann::json::parse(r.out)["max_rel_diff"].get<double>() < 0.1);
  }
  check_bad_input(run(dir, "quantize --dynamic " + fixture("gru_text.pt") + " -o " + dir.file("x.pt") + kTokens + " --exclude nosuch"),
                  "no module or value of that name");
}
