// Passes as named units: the registry, options, and what fold_batch_norm
// folds and what it leaves alone (with its reason).
#include <catch2/catch.hpp>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/passes/fold_batch_norm.h"
#include "compress/passes/pass.h"
#include "make_module.h"
#include "test_util.h"

using namespace compress;
using compress::testing::make_module;

namespace {

const char* kLinear = "__torch__.torch.nn.modules.linear.Linear";
const char* kBatchNorm1d = "__torch__.torch.nn.modules.batchnorm.BatchNorm1d";

torch::jit::Module bn1d(int64_t features, bool running_stats = true) {
  std::map<std::string, at::Tensor> buffers;
  if (running_stats) buffers = {{"running_mean", at::randn({features}) * 0.1}, {"running_var", at::rand({features}) + 0.5}};
  std::string stats = running_stats ? "self.running_mean, self.running_var, self.training" : "None, None, True";
  return make_module(kBatchNorm1d, {{"weight", at::rand({features}) + 0.5}, {"bias", at::randn({features})}},
                     "def forward(self, x):\n    return torch.batch_norm(x, self.weight, self.bias, " + stats +
                         ", 0.1, 1e-5, True)\n",
                     buffers);
}

// x -> fc -> bn -> relu -> head
torch::jit::Module linear_bn_model(int64_t features, bool running_stats = true,
                                   const std::string& forward =
                                       "def forward(self, x):\n    return self.head.forward(torch.relu(self.bn.forward(self.fc.forward(x))))\n") {
  torch::manual_seed(2);
  auto fc = make_module(kLinear, {{"weight", at::randn({features, features})}},
                        "def forward(self, x):\n    return torch.linear(x, self.weight, None)\n");
  auto head = make_module(kLinear, {{"weight", at::randn({3, features})}, {"bias", at::randn({3})}},
                          "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  auto root = make_module("__torch__.test.Net", {}, "");
  root.register_module("fc", fc);
  root.register_module("bn", bn1d(features, running_stats));
  root.register_module("head", head);
  root.define(forward);
  root.eval();
  return root;
}

}  // namespace

TEST_CASE("passes are registered by name with their options", "[passes]") {
  auto names = pass_names();
  CHECK(std::find(names.begin(), names.end(), "fold_batch_norm") != names.end());
  CHECK(std::find(names.begin(), names.end(), "strip_dropout") != names.end());
  CHECK(pass_info("fold_batch_norm").default_options == nlohmann::json{{"linear", true}});
  Graph g = import_module(linear_bn_model(8));
  CHECK_THROWS_WITH(run_pass(g, "fold_batchnorm"), Catch::Contains("unknown pass 'fold_batchnorm' (did you mean 'fold_batch_norm'?)"));
  CHECK_THROWS_WITH(run_pass(g, "fold_batch_norm", {{"linaer", false}}),
                    Catch::Contains("fold_batch_norm.linaer: unknown option (did you mean 'linear'?)"));
  CHECK_THROWS_WITH(run_pass(g, "fold_batch_norm", {{"linear", 3}}),
                    Catch::Contains("fold_batch_norm.linear: expected a boolean, got number"));
  try {
    run_pass(g, "strip_dropout", {{"x", 1}});
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::BadInput);
  }
  // Options reach the pass.
  g.set_example_inputs({InputSpec{{4, 8}}});
  PassResult off = run_pass(g, "fold_batch_norm", {{"linear", false}});
  CHECK(off.changed == 0);
  REQUIRE(off.skipped.size() == 1);
  CHECK(off.skipped[0] == "bn: folding into linear layers is off (linear=false)");
  CHECK(off.to_json()["pass"] == "fold_batch_norm");
}

TEST_CASE("fold_batch_norm folds linear -> batch_norm1d within 1e-5", "[passes]") {
  auto original = linear_bn_model(8);
  Graph g = import_module(original);
  g.set_example_inputs({InputSpec{{4, 8}}});
  PassResult r = run_pass(g, "fold_batch_norm");
  CHECK(r.changed == 1);
  CHECK(r.changes == std::vector<std::string>{"bn folded into fc"});
  CHECK_FALSE(g.has_param("bn.running_mean"));
  CHECK(g.has_param("fc.bias"));
  at::Tensor x = at::randn({16, 8});
  torch::NoGradGuard no_grad;
  at::Tensor y = original.forward({x}).toTensor();
  double rel = compress::testing::max_abs_diff(export_module(g).forward({x}).toTensor(), y) / y.abs().max().item<double>();
  CHECK(rel < 1e-5);
}

TEST_CASE("fold_batch_norm leaves alone what it cannot fold, saying why", "[passes]") {
  SECTION("unknown input shape") {
    Graph g = import_module(linear_bn_model(8));
    PassResult r = fold_batch_norm(g);
    CHECK(r.changed == 0);
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0].find("the input shape is unknown") != std::string::npos);
  }
  SECTION("a rank-3 linear output: the batch norm's channels are not the features") {
    Graph g = import_module(linear_bn_model(4));
    g.set_example_inputs({InputSpec{{2, 4, 4}}});
    PassResult r = fold_batch_norm(g);
    CHECK(r.changed == 0);
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0].find("rank 3") != std::string::npos);
  }
  SECTION("no running statistics") {
    Graph g = import_module(linear_bn_model(8, false));
    g.set_example_inputs({InputSpec{{4, 8}}});
    PassResult r = fold_batch_norm(g);
    CHECK(r.changed == 0);
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0] == "bn: it has no running statistics (track_running_stats=False)");
  }
  SECTION("a layer whose output is read elsewhere") {
    auto m = linear_bn_model(8, true, "def forward(self, x):\n    y = self.fc.forward(x)\n    return self.head.forward(self.bn.forward(y) + y)\n");
    Graph g = import_module(m);
    g.set_example_inputs({InputSpec{{4, 8}}});
    PassResult r = fold_batch_norm(g);
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0] == "bn: the output of fc is also read elsewhere");
  }
}
