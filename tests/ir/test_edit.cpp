// The editing API: ownership, in-place ops, handles and use-lists, op
// creation, pattern matching, lint, names, shapes and taps.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

#include "compress/data/dataset.h"
#include "compress/error.h"
#include "compress/ir/builder.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/ir/leaf.h"
#include "compress/ir/match.h"
#include "compress/models/zoo.h"
#include "compress/train/trainer.h"
#include "make_module.h"
#include "test_util.h"

using namespace compress;
using compress::testing::fixture;
using compress::testing::load_fixture_tensor;
using compress::testing::max_abs_diff;

namespace {

torch::jit::Module load_eval(const std::string& name) {
  auto m = torch::jit::load(fixture(name + ".pt"));
  m.eval();
  return m;
}

std::map<std::string, at::Tensor> snapshot(const torch::jit::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.name] = p.value.detach().clone();
  for (const auto& b : m.named_buffers(true)) out[b.name] = b.value.detach().clone();
  return out;
}

bool identical(const std::map<std::string, at::Tensor>& a, const torch::jit::Module& m) {
  auto b = snapshot(m);
  if (a.size() != b.size()) return false;
  for (const auto& kv : a)
    if (!b.count(kv.first) || !at::equal(kv.second, b.at(kv.first))) return false;
  return true;
}

torch::jit::Module scripted(const std::string& source, const std::map<std::string, at::Tensor>& params = {}) {
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module m(c10::QualifiedName("__torch__.test.Net"), cu, true);
  m.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& kv : params) m.register_parameter(kv.first, kv.second, false);
  m.define(source);
  return m;
}

int count_ops(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.op_name() == op;
  return n;
}

}  // namespace

TEST_CASE("a teacher stays bit-identical while a student exported from it trains", "[ir][ownership]") {
  at::set_num_threads(1);
  torch::jit::Module teacher = models::build("cnn", 3).module;
  teacher.eval();
  auto before = snapshot(teacher);
  Graph g = import_module(teacher);
  torch::jit::Module student = export_module(g);
  torch::jit::Module sibling = export_module(g);
  auto graph_before = g.param(g.param_order.front()).clone();

  data::TensorDataset ds;
  ds.inputs = at::rand({64, 1, 28, 28});
  ds.labels = at::randint(0, 10, {64});
  ds.num_classes = 10;
  ds.name = "synthetic";
  train::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch_size = 16;
  cfg.quiet = true;
  cfg.threads = 1;
  student.train();
  train::Trainer trainer(student, cfg);
  trainer.fit(ds);

  // The student moved (weights and BN statistics); nothing else did.
  CHECK_FALSE(identical(before, trainer.module()));
  CHECK(identical(before, teacher));
  CHECK(identical(before, sibling));
  CHECK(at::equal(graph_before, g.param(g.param_order.front())));
}

TEST_CASE("in-place ops become functional: a tap before an in-place ReLU reads the pre-ReLU tensor", "[ir][inplace]") {
  torch::manual_seed(0);
  auto m = scripted(R"(
def forward(self, x):
    y = torch.linear(x, self.w)
    z = torch.relu_(y)
    return z + y
)",
                    {{"w", at::randn({6, 4})}});
  Graph g = import_module(m);
  CHECK(count_ops(g, "aten::relu_") == 0);
  CHECK(count_ops(g, "aten::relu") == 1);
  // The add reads the ReLU's result twice: y was written in place.
  Node* relu = nullptr;
  for (Node& n : g.nodes())
    if (n.op_name() == "aten::relu") relu = &n;
  REQUIRE(relu);
  ValueId pre = relu->input(0).value;
  CHECK(g.users(relu->output()).size() == 1);
  CHECK(g.uses(relu->output()).size() == 2);

  at::Tensor x = at::randn({5, 4});
  ExportOptions options;
  options.taps = {g.name_of(pre)};
  auto out = export_module(g, options).forward({x}).toTuple();
  at::Tensor expected_pre = at::linear(x, m.attr("w").toTensor());
  CHECK(at::equal(out->elements()[0].toTensor(), m.forward({x}).toTensor()));
  CHECK(at::equal(out->elements()[1].toTensor(), expected_pre));
  CHECK((out->elements()[1].toTensor() < 0).any().item<bool>());
}

TEST_CASE("an in-place op on a view stays in place and stays exact", "[ir][inplace]") {
  auto m = scripted(R"(
def forward(self, x):
    y = x * 2
    v = torch.select(y, 0, 1)
    torch.relu_(v)
    return y
)");
  Graph g = import_module(m);
  CHECK(count_ops(g, "aten::relu_") == 1);  // the write must reach y through the view
  at::Tensor x = at::randn({3, 4});
  CHECK(at::equal(export_module(g).forward({x}).toTensor(), m.forward({x}).toTensor()));
}

TEST_CASE("torchvision's in-place ReLUs and residual add_ are functional after import", "[ir][inplace]") {
  Graph g = import_module(load_eval("resnet18"));
  CHECK(count_ops(g, "aten::relu_") == 0);
  CHECK(count_ops(g, "aten::add_") == 0);
  CHECK(count_ops(g, "aten::relu") == 17);
  CHECK(count_ops(g, "aten::add") == 8);
  Graph mb = import_module(load_eval("mobilenet_v2"));
  CHECK(count_ops(mb, "aten::hardtanh_") == 0);
  CHECK(count_ops(mb, "aten::hardtanh") == 35);
}

TEST_CASE("an op inserted after every conv exports and gives identical outputs", "[ir][builder]") {
  at::set_num_threads(1);
  for (const char* name : {"resnet18", "mobilenet_v2"}) {
    INFO(name);
    auto original = load_eval(name);
    Graph g = import_module(original);
    int inserted = 0;
    for (Node* conv : g.node_list()) {
      if (!conv->is_leaf(LeafKind::Conv2d)) continue;
      auto at = g.inserting_after(conv);
      ValueId y = add_op(g, "aten::mul", {Arg::of_value(conv->output()), Arg::of_constant(1.0)});
      Node* mul = g.producer(y);
      g.replace_uses_if(conv->output(), Arg::of_value(y), [&](const Node& n) { return &n != mul; });
      CHECK(mul->scope == conv->scope);
      CHECK(g.users(conv->output()) == std::vector<Node*>{mul});
      ++inserted;
    }
    CHECK(inserted == (std::string(name) == "resnet18" ? 20 : 52));
    g.lint();
    at::Tensor x = load_fixture_tensor(std::string(name) + ".input.pt");
    torch::NoGradGuard no_grad;
    CHECK(max_abs_diff(export_module(g).forward({x}).toTensor(), original.forward({x}).toTensor()) == 0.0);
  }
}

TEST_CASE("node handles stay valid across insertions and erasures, use-lists stay exact", "[ir][handles]") {
  Graph g = import_module(load_eval("resnet18"));
  auto nodes = g.node_list();
  Node* first = nodes.front();
  Node* last = nodes.back();
  Node* fc = nullptr;
  for (Node* n : nodes)
    if (n->is_leaf(LeafKind::Linear)) fc = n;
  REQUIRE(fc);
  int fc_id = fc->id();
  // Erase every ReLU, one by one, routing its users to its input.
  size_t before = g.num_nodes();
  int erased = 0;
  for (Node& n : g.nodes()) {
    if (n.op_name() != "aten::relu") continue;
    g.replace_all_uses(n.output(), n.input(0));
    g.erase(&n);
    CHECK(n.erased());
    ++erased;
  }
  CHECK(erased == 17);
  CHECK(g.num_nodes() == before - 17);
  CHECK(first->module == "conv1");
  CHECK(fc->id() == fc_id);
  CHECK(fc->op_name() == "nn.Linear");
  CHECK(last == g.last_node());
  g.lint();
  // An erase with users left is refused, naming the node.
  CHECK_THROWS_WITH(g.erase(first), Catch::Contains("conv1 (nn.Conv2d) still has a use"));
  // Every value's use-list agrees with the operands.
  for (Node& n : g.nodes())
    for (size_t k = 0; k < n.inputs().size(); ++k)
      if (n.input(k).is_value()) {
        const auto& uses = g.uses(n.input(k).value);
        CHECK(std::count_if(uses.begin(), uses.end(), [&](const Use& u) { return u.user == &n && u.index == k; }) == 1);
      }
  // replace_node: fc -> linear op with the same parameters.
  Node* made = g.replace_node(fc, [&](Graph& gg) {
    ValueId y = add_op(gg, "aten::linear", {fc->input(0), Arg::of_param("fc.weight"), Arg::of_param("fc.bias")});
    return std::vector<Arg>{Arg::of_value(y)};
  });
  REQUIRE(made);
  CHECK(made->op_name() == "aten::linear");
  CHECK(fc->erased());
  CHECK(g.is_output(made->output()));
  g.lint();
}

TEST_CASE("create_op resolves the schema and checks the operands", "[ir][builder]") {
  Graph g = import_module(load_eval("resnet18"));
  Node* conv = g.first_node();
  auto at = g.inserting_after(conv);
  Node* add = create_op(g, "aten::add", {Arg::of_value(conv->output()), Arg::of_value(conv->output())});
  CHECK(add->schema->overload_name() == "Tensor");
  CHECK(add->inputs().size() == 3);  // alpha filled in from the default
  CHECK(g.name_of(add->output()) == "add");  // conv1 is called at the root scope
  Node* scaled = create_op(g, "aten::add.Scalar", {Arg::of_value(add->output()), Arg::of_constant(int64_t{2})});
  CHECK(scaled->schema->overload_name() == "Scalar");
  CHECK_THROWS_WITH(create_op(g, "aten::relu", {Arg::of_constant(std::string("x"))}),
                    Catch::Contains("no overload of aten::relu accepts"));
  CHECK_THROWS_WITH(create_op(g, "aten::no_such_op", {}), Catch::Contains("no operator 'aten::no_such_op'"));
  CHECK_THROWS_WITH(create_op(g, "relu", {}), Catch::Contains("needs a namespace"));
  // Custom ops of the toolkit's ops library resolve like aten ops.
  CHECK(resolve_schema(g, "compress::quantize_u8", {Arg::of_value(conv->output()), Arg::of_constant(0.1),
                                                    Arg::of_constant(int64_t{3})})
            ->name() == "compress::quantize_u8");
  g.erase(scaled);
  g.erase(add);
  g.lint();
}

TEST_CASE("the pattern matcher finds every conv-bn-relu6 of mobilenet_v2", "[ir][match]") {
  Graph g = import_module(load_eval("mobilenet_v2"));
  // Counted independently: activations fed by a batch norm fed by a conv.
  int expected = 0;
  for (Node& act : g.nodes()) {
    if (act.op_name() != "aten::hardtanh") continue;
    Node* bn = g.producer(act.input(0).value);
    if (bn && bn->is_leaf(LeafKind::BatchNorm2d) && g.producer(bn->input(0).value)->is_leaf(LeafKind::Conv2d)) ++expected;
  }
  auto matches = find_matches(g, patterns::conv_bn_act());
  CHECK(expected == 35);
  CHECK(matches.size() == 35);
  for (const Match& m : matches) {
    CHECK(m.nodes[0]->is_leaf(LeafKind::Conv2d));
    CHECK(m.nodes[1]->is_leaf(LeafKind::BatchNorm2d));
    CHECK(m.root()->op_name() == "aten::hardtanh");
  }
  // conv-bn alone: every conv of mobilenet_v2 is followed by its batch norm.
  CHECK(find_matches(g, patterns::conv_bn()).size() == 52);

  // Residual blocks of resnet18: conv -> bn -> add(identity) -> relu, either operand order.
  Graph r = import_module(load_eval("resnet18"));
  auto residual = find_matches(r, patterns::conv_bn_add_act());
  CHECK(residual.size() == 8);
  CHECK(find_matches(r, patterns::add_act()).size() == 8);
  // A conv whose output has a second reader is not fused away.
  Node* stem = r.first_node();
  {
    auto at = r.inserting_at_end();
    add_op(r, "aten::mean", {Arg::of_value(stem->output()), Arg::of_constant(std::vector<int64_t>{2, 3})});
  }
  CHECK(find_matches(r, patterns::conv_bn_act()).size() == find_matches(import_module(load_eval("resnet18")), patterns::conv_bn_act()).size() - 1);
}

TEST_CASE("lint rejects what a pass can break", "[ir][lint]") {
  Graph g = import_module(load_eval("resnet18"));
  Node* conv = g.first_node();
  SECTION("attributes that disagree with the weight") {
    std::get<ConvAttrs>(conv->attrs).out_channels = 32;
    CHECK_THROWS_WITH(g.lint(), Catch::Contains("conv1") && Catch::Contains("out_channels vs weight dim 0"));
  }
  SECTION("a weight that disagrees with the attributes") {
    g.set_param("conv1.weight", at::zeros({64, 3, 5, 5}));
    CHECK_THROWS_WITH(g.lint(), Catch::Contains("kernel vs weight dim 2"));
  }
  SECTION("a bias flag without a bias") {
    std::get<ConvAttrs>(conv->attrs).bias = true;
    CHECK_THROWS_WITH(g.lint(), Catch::Contains("misses 'bias'"));
  }
  SECTION("a node moved before its operand") {
    Node* bn = conv->next();
    g.move_before(bn, conv);
    CHECK_THROWS_WITH(g.lint(), Catch::Contains("before it is defined"));
  }
  SECTION("a reference to a removed parameter") {
    g.remove_param("bn1.running_var");
    CHECK_THROWS_WITH(g.lint(), Catch::Contains("missing parameter 'bn1.running_var'"));
  }
  SECTION("a linear layer whose features disagree with its weight") {
    for (Node& n : g.nodes())
      if (n.is_leaf(LeafKind::Linear)) std::get<LinearAttrs>(n.attrs).in_features = 500;
    CHECK_THROWS_WITH(g.lint(), Catch::Contains("in_features vs weight dim 1"));
  }
}

TEST_CASE("values have stable readable names", "[ir][names]") {
  Graph g = import_module(load_eval("resnet18"));
  CHECK(g.find_value("conv1"));
  CHECK(g.find_value("layer3.1:add"));
  CHECK(g.find_value("layer1.0.bn2"));
  CHECK(g.find_value("fc"));
  CHECK(g.producer(*g.find_value("layer3.1:add"))->op_name() == "aten::add");
  CHECK(g.name_of(g.inputs()[0]) == "x");
  CHECK_THROWS_WITH(g.value_named("layer3.1:ad"), Catch::Contains("did you mean 'layer3.1:add'"));
  // Names survive a copy and another import of the export.
  Graph copy = g;
  CHECK(copy.find_value("layer3.1:add") == g.find_value("layer3.1:add"));
  Graph again = import_module(export_module(g));
  CHECK(again.find_value("layer3.1:add"));
  CHECK(again.find_value("layer4.1.relu:relu_1"));
}

TEST_CASE("shapes and dtypes of every value, fast path equal to running the model", "[ir][shapes]") {
  for (const char* name : {"resnet18", "mobilenet_v2", "vit_small", "text_model"}) {
    INFO(name);
    Graph g = import_module(load_eval(name));
    at::Tensor x = load_fixture_tensor(std::string(name) + ".input.pt");
    CHECK_THROWS_WITH(g.infer_shapes(), Catch::Contains("input shape is not known"));
    g.set_example_inputs({InputSpec{Shape(x.sizes().begin(), x.sizes().end()), x.scalar_type()}});
    ExportOptions options;
    options.record_values = true;
    auto recorded = export_module(g, options).get_method("record_values")({x}).toTensorList();
    size_t k = 0;
    for (const Node& n : g.nodes())
      for (ValueId v : n.outputs()) {
        if (!g.value(v).is_tensor()) continue;
        at::Tensor t = recorded.get(k++);
        INFO(g.name_of(v));
        CHECK(g.shape(v) == Shape(t.sizes().begin(), t.sizes().end()));
        CHECK(g.dtype(v) == t.scalar_type());
      }
    CHECK(k == recorded.size());
  }
}

TEST_CASE("shapes follow edits and other example inputs", "[ir][shapes]") {
  Graph g = import_module(load_eval("resnet18"));
  g.set_example_inputs({InputSpec{{1, 3, 224, 224}}});
  CHECK(g.shape(*g.find_value("fc")) == Shape{1, 1000});
  // The export remembers the example inputs, names and scopes for the next import.
  Graph again = import_module(export_module(g));
  REQUIRE(again.example_inputs().size() == 1);
  CHECK(again.example_inputs()[0].shape == Shape{1, 3, 224, 224});
  CHECK(again.producer(again.value_named("layer3.1:add"))->scope == "layer3.1");
  g.set_example_inputs({InputSpec{{4, 3, 64, 64}}});
  CHECK(g.shape(*g.find_value("layer4.1.relu:relu_1")) == Shape{4, 512, 2, 2});
  Node* conv = g.first_node();
  ValueId pooled;
  {
    auto at = g.inserting_after(conv);
    pooled = add_op(g, "aten::max_pool2d", {Arg::of_value(conv->output()), Arg::of_constant(std::vector<int64_t>{2, 2})});
  }
  CHECK(g.shape(pooled) == Shape{4, 64, 16, 16});
  g.set_example_inputs({InputSpec{{1, 5, 64, 64}}});
  CHECK_THROWS_WITH(g.infer_shapes(), Catch::Contains("at node conv1 (nn.Conv2d): expects 3 input channels"));
  CHECK_THROWS_WITH(g.set_example_inputs({}), Catch::Contains("takes 1 input(s) but 0"));

  // An op that refuses its operands: named through the slow path's traceback.
  auto m = scripted("def forward(self, x):\n    return torch.add(torch.relu(x), self.w)\n", {{"w", at::randn({4})}});
  Graph s = import_module(m);
  s.set_example_inputs({InputSpec{{2, 5}}});
  CHECK_THROWS_WITH(s.infer_shapes(), Catch::Contains("input shape 2x5 does not fit the model at node add (aten::add)"));
  s.set_example_inputs({InputSpec{{2, 4}}});
  CHECK(s.shape(s.outputs()[0].value) == Shape{2, 4});
}

TEST_CASE("taps: forward returns the chosen values after the outputs", "[ir][taps]") {
  at::set_num_threads(1);
  auto original = load_eval("resnet18");
  Graph g = import_module(original);
  ExportOptions options;
  options.taps = {"layer2.1:add", "layer4.1.bn2"};
  auto m = export_module(g, options);
  at::Tensor x = load_fixture_tensor("resnet18.input.pt");
  torch::NoGradGuard no_grad;
  auto out = m.forward({x}).toTuple();
  REQUIRE(out->elements().size() == 3);
  CHECK(at::equal(out->elements()[0].toTensor(), original.forward({x}).toTensor()));
  CHECK(out->elements()[1].toTensor().sizes() == at::IntArrayRef({1, 128, 28, 28}));
  CHECK(out->elements()[2].toTensor().sizes() == at::IntArrayRef({1, 512, 7, 7}));
  options.taps = {"layer2.1:addd"};
  try {
    export_module(g, options);
    FAIL("an unknown tap was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::BadInput);
    CHECK(std::string(e.what()).find("tap 'layer2.1:addd' is not a value of the model (did you mean 'layer2.1:add'") !=
          std::string::npos);
  }
}

TEST_CASE("the leaf registry has one complete entry per kind", "[ir][leaves]") {
  auto infos = leaf_infos();
  REQUIRE(infos.size() == 9);
  for (const LeafInfo* info : infos) {
    INFO(info->name);
    CHECK(info->recognize);
    CHECK(info->source);
    CHECK(info->output_shape);
    CHECK(info->macs);
    CHECK(info->validate);
    CHECK(std::string(leaf_kind_name(info->kind)) == info->name);
  }
  CHECK(leaf_info(LeafKind::Conv2d).channels.out.front().dim == 0);
  CHECK(leaf_info(LeafKind::Conv2d).channels.in.front().dim == 1);
  CHECK(leaf_info(LeafKind::BatchNorm2d).channels.passthrough);
  CHECK(leaf_info(LeafKind::Linear).channels.activation_dim == -1);
}

TEST_CASE("a commutative pattern tries the other operand order when the first leaves an outside user", "[ir][match]") {
  using compress::testing::make_module;
  auto conv = [](const std::string& name) {
    return make_module("__torch__.torch.nn.modules.conv.Conv2d", {{"weight", at::randn({4, 4, 1, 1})}},
                       "def forward(self, x):\n    return torch.conv2d(x, self.weight, None, [1, 1], [0, 0], [1, 1], 1)\n");
  };
  auto bn = [] {
    return make_module("__torch__.torch.nn.modules.batchnorm.BatchNorm2d", {{"weight", at::ones({4})}, {"bias", at::zeros({4})}},
                       "def forward(self, x):\n    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, "
                       "self.running_var, False, 0.1, 1e-5, True)\n",
                       {{"running_mean", at::zeros({4})}, {"running_var", at::ones({4})}});
  };
  auto root = make_module("__torch__.test.Net", {}, "");
  root.register_module("ca", conv("ca"));
  root.register_module("ba", bn());
  root.register_module("cb", conv("cb"));
  root.register_module("bb", bn());
  // ba's output is also returned: only the (cb, bb) side may be fused away.
  root.define(R"(
def forward(self, x):
    a = self.ba.forward(self.ca.forward(x))
    b = self.bb.forward(self.cb.forward(x))
    return (torch.relu(a + b), a)
)");
  Graph g = import_module(root);
  auto matches = find_matches(g, patterns::conv_bn_add_act());
  REQUIRE(matches.size() == 1);
  CHECK(matches[0].nodes[0]->module == "cb");
  CHECK(matches[0].nodes[1]->module == "bb");
}
