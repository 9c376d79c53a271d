// The importer's contract on tiny models written as TorchScript source:
// what becomes a leaf, what is carried through, what is refused.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <iostream>

#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/passes/fold_batch_norm.h"
#include "compress/passes/strip_dropout.h"
#include "make_module.h"
#include "test_util.h"

using namespace compress;
using compress::testing::make_module;

namespace {

torch::jit::Module conv_bn_dropout_model() {
  torch::manual_seed(1);
  auto conv = make_module("__torch__.torch.nn.modules.conv.Conv2d", {{"weight", at::randn({8, 2, 3, 3})}},
                          "def forward(self, x):\n    return torch.conv2d(x, self.weight, None, [2, 2], [1, 1], [1, 1], 2)\n");
  auto bn = make_module("__torch__.torch.nn.modules.batchnorm.BatchNorm2d",
                        {{"weight", at::rand({8}) + 0.5}, {"bias", at::randn({8})}},
                        "def forward(self, x):\n    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, "
                        "self.running_var, False, 0.1, 1e-5, True)\n",
                        {{"running_mean", at::randn({8}) * 0.1}, {"running_var", at::rand({8}) + 0.5}});
  auto drop = make_module("__torch__.torch.nn.modules.dropout.Dropout", {},
                          "def forward(self, x):\n    return torch.dropout(x, 0.5, False)\n");
  auto fc = make_module("__torch__.torch.nn.modules.linear.Linear", {{"weight", at::randn({3, 8})}, {"bias", at::randn({3})}},
                        "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  auto root = make_module("__torch__.test.Net", {}, "");
  root.register_module("conv", conv);
  root.register_module("bn", bn);
  root.register_module("drop", drop);
  root.register_module("fc", fc);
  root.define(R"(
def forward(self, x):
    y = torch.relu(self.bn.forward(self.conv.forward(x)))
    y = torch.mean(y, [2, 3])
    y = self.drop.forward(y)
    return self.fc.forward(y)
)");
  root.eval();
  return root;
}

}  // namespace

TEST_CASE("leaves are typed with their hyper-parameters and state_dict names", "[ir]") {
  Graph g = import_module(conv_bn_dropout_model());
  std::vector<std::string> ops;
  for (const auto& n : g.nodes()) ops.push_back(n.op_name());
  CHECK(ops == std::vector<std::string>{"nn.Conv2d", "nn.BatchNorm2d", "aten::relu", "aten::mean", "nn.Dropout", "nn.Linear"});
  const Node& conv = *g.node_list()[0];
  const auto& a = std::get<ConvAttrs>(conv.attrs);
  CHECK(a.in_channels == 4);
  CHECK(a.out_channels == 8);
  CHECK(a.groups == 2);
  CHECK(a.stride == std::vector<int64_t>{2, 2});
  CHECK(a.kernel == std::vector<int64_t>{3, 3});
  CHECK_FALSE(a.bias);
  CHECK(conv.params.at("weight") == "conv.weight");
  CHECK(g.node_list()[1]->params.at("running_var") == "bn.running_var");
  CHECK(std::get<DropoutAttrs>(g.node_list()[4]->attrs).p == 0.5);
  CHECK(std::get<LinearAttrs>(g.node_list()[5]->attrs).in_features == 8);
  CHECK(g.params.at("bn.running_mean").is_buffer);
  CHECK_FALSE(g.params.at("fc.bias").is_buffer);
}

TEST_CASE("the export honours train() and eval() for batch norm and dropout", "[ir]") {
  auto original = conv_bn_dropout_model();
  torch::jit::Module m = export_module(import_module(original));
  at::Tensor x = at::randn({4, 4, 8, 8});
  torch::NoGradGuard no_grad;
  at::Tensor eval_out = m.forward({x}).toTensor();
  CHECK(at::equal(eval_out, original.forward({x}).toTensor()));
  at::Tensor mean_before = m.attr("bn").toModule().attr("running_mean").toTensor().clone();

  m.train();
  at::Tensor train_out = m.forward({x}).toTensor();
  at::Tensor mean_after = m.attr("bn").toModule().attr("running_mean").toTensor();
  // Batch statistics were used and the running mean moved by momentum 0.1.
  CHECK_FALSE(at::allclose(train_out, eval_out));
  auto conv_out = at::conv2d(x, m.attr("conv").toModule().attr("weight").toTensor(), {}, 2, 1, 1, 2);
  at::Tensor expected_mean = mean_before * 0.9 + conv_out.mean({0, 2, 3}) * 0.1;
  CHECK(at::allclose(mean_after, expected_mean, 1e-5, 1e-6));

  m.eval();
  CHECK(at::equal(m.forward({x}).toTensor(), m.forward({x}).toTensor()));
}

TEST_CASE("functional dropout traced as train=False follows the training flag after export", "[ir]") {
  auto root = make_module("__torch__.test.Net", {}, "def forward(self, x):\n    return torch.dropout(x, 0.5, False)\n");
  torch::jit::Module m = export_module(import_module(root));
  at::Tensor x = at::ones({1000});
  CHECK(at::equal(m.forward({x}).toTensor(), x));
  m.train();
  at::Tensor y = m.forward({x}).toTensor();
  CHECK((y == 0).sum().item<int64_t>() > 300);
}

TEST_CASE("a user's class named like a leaf is not a leaf, and unknown ops are carried", "[ir]") {
  auto fake = make_module("__torch__.mymodels.Linear", {{"weight", at::randn({4, 4})}},
                          "def forward(self, x):\n    return torch.cumsum(torch.matmul(x, self.weight), 1)\n");
  auto root = make_module("__torch__.test.Net", {}, "");
  root.register_module("lin", fake);
  root.define("def forward(self, x):\n    return self.lin.forward(x)\n");
  Graph g = import_module(root);
  REQUIRE(g.num_nodes() == 2);
  CHECK(g.node_list()[0]->op_name() == "aten::matmul");
  CHECK(g.node_list()[1]->op_name() == "aten::cumsum");
  CHECK(g.node_list()[0]->input(1).param == "lin.weight");
  at::Tensor x = at::randn({3, 4});
  CHECK(at::equal(export_module(g).forward({x}).toTensor(), root.forward({x}).toTensor()));
  auto prof = profile_model(g, {{3, 4}});
  CHECK(prof.carried_ops.count("aten::cumsum") == 1);
  CHECK(prof.total_macs == 3 * 4 * 4);
}

TEST_CASE("several inputs, integer arguments, tuple outputs and tensor constants round-trip", "[ir]") {
  auto root = make_module("__torch__.test.Net", {{"scale", at::randn({5})}}, R"(
def forward(self, x: Tensor, y: Tensor, k: int):
    a = torch.add(x * self.scale, y, alpha=2)
    b = torch.view(a, [torch.size(a, 0), -1])
    c = torch.sub(b, torch.tensor([1.5]))
    return (c, torch.chunk(a, k, 0)[0], k + 1)
)");
  Graph g = import_module(root);
  torch::jit::Module m = export_module(g);
  at::Tensor x = at::randn({4, 5}), y = at::randn({4, 5});
  auto ours = m.forward({x, y, int64_t{2}}).toTuple();
  auto theirs = root.forward({x, y, int64_t{2}}).toTuple();
  REQUIRE(ours->elements().size() == 3);
  CHECK(at::equal(ours->elements()[0].toTensor(), theirs->elements()[0].toTensor()));
  CHECK(at::equal(ours->elements()[1].toTensor(), theirs->elements()[1].toTensor()));
  CHECK(ours->elements()[2].toInt() == 3);
}

TEST_CASE("control flow that depends on the input is refused, naming the node", "[ir]") {
  auto root = make_module("__torch__.test.Net", {}, R"(
def forward(self, x):
    if bool(torch.sum(x) > 0):
        return x * 2
    return x
)");
  try {
    import_module(root);
    FAIL("control flow was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::BadInput);
    std::string msg = e.what();
    CHECK(msg.find("control flow: prim::If") != std::string::npos);
    CHECK(msg.find("torch.jit.trace") != std::string::npos);
  }
  auto loop = make_module("__torch__.test.Net", {}, R"(
def forward(self, x, n: int):
    for i in range(n):
        x = x + 1
    return x
)");
  CHECK_THROWS_WITH(import_module(loop), Catch::Contains("prim::Loop"));
}

TEST_CASE("conditions on constants and assertions fold away", "[ir]") {
  auto root = make_module("__torch__.test.Net", {}, R"(
def forward(self, x):
    assert torch.dim(x) == 2
    if 3 > 2:
        x = torch.relu(x)
    else:
        x = torch.sigmoid(x)
    return x
)");
  Graph g = import_module(root);
  REQUIRE(g.num_nodes() == 1);
  CHECK(g.node_list()[0]->op_name() == "aten::relu");
}

TEST_CASE("fold-bn on mobilenet_v2 (depthwise) stays within 1e-5", "[ir][passes]") {
  auto original = torch::jit::load(compress::testing::fixture("mobilenet_v2.pt"));
  original.eval();
  Graph g = import_module(original);
  int folded = fold_batch_norm(g).changed;
  CHECK(folded == 52);
  for (const auto& n : g.nodes()) CHECK_FALSE(n.is_leaf(LeafKind::BatchNorm2d));
  CHECK(strip_dropout(g).changed == 1);
  auto m = export_module(g);
  at::Tensor x = compress::testing::load_fixture_tensor("mobilenet_v2.input.pt");
  torch::NoGradGuard no_grad;
  at::Tensor y = original.forward({x}).toTensor();
  double rel = compress::testing::max_abs_diff(m.forward({x}).toTensor(), y) / y.abs().max().item<double>();
  CHECK(rel < 1e-5);
}

// Hidden helper: prints the IR and the exported source of a fixture.
// Run: COMPRESS_DUMP=resnet18 test_ir "[.dump]"
TEST_CASE("dump a fixture", "[.dump]") {
  const char* name = std::getenv("COMPRESS_DUMP");
  if (!name) return;
  auto m = torch::jit::load(compress::testing::fixture(std::string(name) + ".pt"));
  Graph g = import_module(m);
  std::cout << g.to_string() << "\n" << export_source(g) << std::endl;
}
