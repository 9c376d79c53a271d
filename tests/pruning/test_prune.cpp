// Structured pruning: the group rules on tiny models written in TorchScript
// source, budgets, physical removal, and an end-to-end run on torchvision
// models.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

#include <cmath>
#include <map>
#include <numeric>

#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"
#include "compress/pruning/groups.h"
#include "compress/pruning/iterative.h"
#include "compress/pruning/prune.h"
#include "ir/make_module.h"
#include "test_util.h"

using namespace compress;
using namespace compress::pruning;
using compress::testing::make_module;

namespace {

const char* kConv = "__torch__.torch.nn.modules.conv.Conv2d";
const char* kBn = "__torch__.torch.nn.modules.batchnorm.BatchNorm2d";
const char* kLinear = "__torch__.torch.nn.modules.linear.Linear";

torch::jit::Module conv(int64_t in, int64_t out, int64_t groups = 1) {
  return make_module(kConv, {{"weight", at::randn({out, in / groups, 3, 3})}, {"bias", at::randn({out})}},
                     "def forward(self, x):\n    return torch.conv2d(x, self.weight, self.bias, [1, 1], [1, 1], [1, 1], " +
                         std::to_string(groups) + ")\n");
}
torch::jit::Module bn(int64_t c) {
  return make_module(kBn, {{"weight", at::rand({c}) + 0.5}, {"bias", at::randn({c})}},
                     "def forward(self, x):\n    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, "
                     "self.running_var, False, 0.1, 1e-5, True)\n",
                     {{"running_mean", at::randn({c}) * 0.1}, {"running_var", at::rand({c}) + 0.5}});
}
torch::jit::Module linear(int64_t in, int64_t out) {
  return make_module(kLinear, {{"weight", at::randn({out, in})}, {"bias", at::randn({out})}},
                     "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
}

// A root with the given children and forward.
torch::jit::Module net(const std::vector<std::pair<std::string, torch::jit::Module>>& children, const std::string& forward) {
  torch::manual_seed(0);
  auto root = make_module("__torch__.test.Net", {}, "");
  for (const auto& kv : children) root.register_module(kv.first, kv.second);
  root.define(forward);
  root.eval();
  return root;
}

Graph imported(const torch::jit::Module& m, Shape input) {
  Graph g = import_module(m);
  g.set_example_inputs({InputSpec{std::move(input)}});
  return g;
}

const Group& group(const GroupAnalysis& a, const std::string& name) {
  int i = a.find(name);
  REQUIRE(i >= 0);
  return a.groups[static_cast<size_t>(i)];
}

// A forward whose features `y` (an expression) are gated by a squeeze-excitation
// block of children se1, se2, then read by child out.
std::string squeeze_excited(const std::string& features) {
  return "def forward(self, x):\n    y = " + features +
         "\n    s = torch.adaptive_avg_pool2d(y, [1, 1])\n"
         "    s = torch.sigmoid(self.se2.forward(torch.relu(self.se1.forward(s))))\n"
         "    return self.out.forward(y * s)\n";
}

// TorchScript lines that shuffle `v`'s channels in 2 groups as ShuffleNet
// does (view, transpose, view), its sizes read at run time.
std::string shuffled(const std::string& v) {
  return "    n = " + v + ".size(0)\n    h = " + v + ".size(2)\n    w = " + v + ".size(3)\n    " + v +
         " = torch.transpose(" + v + ".view([n, 2, " + v + ".size(1) // 2, h, w]), 1, 2).contiguous().view([n, -1, h, w])\n";
}

// A ShuffleNet unit on `z`: half the channels through child `branch`, the
// other half passed on, concatenated and shuffled.
std::string shuffle_unit(const std::string& branch) {
  return "    x1, x2 = torch.chunk(z, 2, 1)\n    z = torch.cat([x1, torch.relu(self." + branch + ".forward(x2))], 1)\n" +
         shuffled("z");
}

bool has_member(const Group& grp, const std::string& module) {
  return std::find(grp.members.begin(), grp.members.end(), module) != grp.members.end();
}

// The pruned graph runs, keeps the output shape, and computes something.
void check_runs(const Graph& g, torch::jit::Module original, Shape input) {
  at::Tensor x = at::randn(input);
  torch::NoGradGuard no_grad;
  at::Tensor y = export_module(g).forward({x}).toTensor();
  CHECK(y.sizes() == original.forward({x}).toTensor().sizes());
  CHECK(y.isfinite().all().item<bool>());
}

}  // namespace

TEST_CASE("residual adds couple every operand's channels", "[pruning][groups]") {
  auto m = net({{"c1", conv(3, 8)}, {"b1", bn(8)}, {"c2", conv(8, 8)}, {"b2", bn(8)}, {"c3", conv(8, 4)}},
               R"(
def forward(self, x):
    y = torch.relu(self.b1.forward(self.c1.forward(x)))
    z = self.b2.forward(self.c2.forward(y))
    return self.c3.forward(torch.relu(z + y))
)");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& stream = group(a, "c1");
  CHECK(stream.width == 8);
  CHECK_FALSE(stream.frozen);
  for (const char* member : {"c1", "b1", "c2", "b2", "c3"}) CHECK(has_member(stream, member));
  CHECK(a.find("c2") < 0);  // c2's outputs are the residual stream's
  CHECK(group(a, "c3").frozen);  // returned by the model
  PruneOptions o;
  o.ratio = 0.5;
  PruneResult r = prune(g, o);
  REQUIRE(r.changes.size() == 1);
  CHECK(r.changes[0].after == 4);
  CHECK(g.param("c2.weight").sizes() == at::IntArrayRef({4, 4, 3, 3}));
  CHECK(g.param("c3.weight").sizes() == at::IntArrayRef({4, 4, 3, 3}));
  CHECK(g.param("b2.running_var").size(0) == 4);
  check_runs(g, m, {1, 3, 8, 8});
}

TEST_CASE("concatenation maps each input to its offset range", "[pruning][groups]") {
  auto m = net({{"a", conv(3, 6)}, {"b", conv(3, 10)}, {"head", conv(16, 4)}}, R"(
def forward(self, x):
    return self.head.forward(torch.cat([self.a.forward(x), torch.relu(self.b.forward(x))], 1))
)");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& ga = group(a, "a");
  const Group& gb = group(a, "b");
  CHECK(ga.width == 6);
  CHECK(gb.width == 10);
  auto head_slice = [](const Group& grp) {
    for (const auto& s : grp.slices)
      if (s.param == "head.weight") return s;
    FAIL("no slice in head");
    return ChannelSlice{};
  };
  CHECK(head_slice(ga).offset == 0);
  CHECK(head_slice(gb).offset == 6);
  CHECK(head_slice(gb).dim == 1);
  PruneOptions o;
  o.ratios = {{"b", 0.5}};
  prune(g, o);
  CHECK(g.param("b.weight").size(0) == 5);
  CHECK(g.param("head.weight").size(1) == 11);
  CHECK(g.param("a.weight").size(0) == 6);
  check_runs(g, m, {1, 3, 8, 8});
}

TEST_CASE("depthwise convolutions pass channels on", "[pruning][groups]") {
  auto m = net({{"pw", conv(3, 8)}, {"dw", conv(8, 8, 8)}, {"out", conv(8, 2)}}, R"(
def forward(self, x):
    return self.out.forward(torch.relu(self.dw.forward(self.pw.forward(x))))
)");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& pw = group(a, "pw");
  CHECK(has_member(pw, "dw"));
  CHECK(has_member(pw, "out"));
  CHECK_FALSE(pw.frozen);
  PruneOptions o;
  o.ratio = 0.25;
  prune(g, o);
  const auto& dw = std::get<ConvAttrs>(g.producer(g.value_named("dw"))->attrs);
  CHECK(dw.groups == 6);
  CHECK(dw.in_channels == 6);
  CHECK(dw.out_channels == 6);
  CHECK(g.param("dw.weight").sizes() == at::IntArrayRef({6, 1, 3, 3}));
  check_runs(g, m, {1, 3, 8, 8});
}

namespace {

// Zeroes rows of a parameter (a filter and its bias): the channels they make
// are then zero, so removing them must leave the model's output as it was.
void zero_rows(torch::jit::Module& m, const std::string& param, const std::vector<int64_t>& rows) {
  torch::NoGradGuard no_grad;
  for (const auto& p : m.named_parameters(true))
    if (p.name == param)
      for (int64_t r : rows) p.value[r].zero_();
}

// Zeroes output channels `rows` of the conv or linear layer `module` (weight and bias).
void zero_channels(torch::jit::Module& m, const std::string& module, const std::vector<int64_t>& rows) {
  zero_rows(m, module + ".weight", rows);
  zero_rows(m, module + ".bias", rows);
}

// `m` imported at `input` and pruned with a ratio per group.
Graph pruned(const torch::jit::Module& m, Shape input, const std::map<std::string, double>& ratios) {
  Graph g = imported(m, std::move(input));
  PruneOptions o;
  o.ratios = ratios;
  prune(g, o);
  return g;
}

// The offsets along its dimension of every slice of `param` in `grp`, in slice order.
std::vector<int64_t> offsets_of(const Group& grp, const std::string& param) {
  std::vector<int64_t> offsets;
  for (const auto& s : grp.slices)
    if (s.param == param) offsets.push_back(s.offset);
  return offsets;
}

// The pruned graph computes what the original did (its removed channels were
// zero). Both run in float64: in float32 the pruned convolutions, summing
// fewer channels in another order, left outputs near zero 2.7e-5 off (once
// in ~100 runs, outputs reaching 132), past the 1e-5 this checks.
void check_same_output(const Graph& g, const torch::jit::Module& original, Shape input) {
  at::Tensor x = at::randn(input).to(at::kDouble);
  torch::NoGradGuard no_grad;
  torch::jit::Module pruned = export_module(g), reference = original.deepcopy();
  pruned.to(at::kDouble);
  reference.to(at::kDouble);
  at::Tensor y = pruned.forward({x}).toTensor();
  at::Tensor want = reference.forward({x}).toTensor();
  REQUIRE(y.sizes() == want.sizes());
  INFO("max |difference| " << (y - want).abs().max().item<double>());
  CHECK(at::allclose(y, want, 1e-4, 1e-5));
}

const ConvAttrs& conv_attrs(const Graph& g, const std::string& module) {
  return std::get<ConvAttrs>(g.producer(g.value_named(module))->attrs);
}

}  // namespace

TEST_CASE("grouped convolutions keep their groups and shrink each alike", "[pruning][groups]") {
  // gc: 2 groups of 4 input and 4 output channels. Its input's blocks are
  // coupled position by position (pw's channels j and 4 + j are one channel
  // of the group); its output is a group of 4, repeated in both blocks.
  auto m = net({{"pw", conv(3, 8)}, {"gc", conv(8, 8, 2)}, {"out", conv(8, 2)}}, R"(
def forward(self, x):
    return self.out.forward(torch.relu(self.gc.forward(torch.relu(self.pw.forward(x)))))
)");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& pw = group(a, "pw");
  CHECK(pw.width == 4);
  CHECK_FALSE(pw.frozen);
  CHECK(has_member(pw, "gc"));
  CHECK(offsets_of(pw, "pw.weight") == std::vector<int64_t>{0, 4});
  const Group& gc = group(a, "gc");
  CHECK(gc.width == 4);
  CHECK_FALSE(gc.frozen);
  CHECK(has_member(gc, "out"));
  CHECK_FALSE(has_member(gc, "pw"));

  // Channel 1 of pw's group (pw's 1 and 5) and channel 2 of gc's (gc's 2
  // and 6) are zero: L1 removes exactly those, and the output stays.
  zero_channels(m, "pw", {1, 5});
  zero_channels(m, "gc", {2, 6});
  Graph g2 = pruned(m, {1, 3, 8, 8}, {{"pw", 0.25}, {"gc", 0.25}});
  const ConvAttrs& c = conv_attrs(g2, "gc");
  CHECK(c.groups == 2);
  CHECK(c.in_channels == 6);
  CHECK(c.out_channels == 6);
  CHECK(g2.param("gc.weight").sizes() == at::IntArrayRef({6, 3, 3, 3}));
  CHECK(g2.param("pw.weight").size(0) == 6);
  CHECK(g2.param("out.weight").size(1) == 6);
  check_same_output(g2, m, {1, 3, 8, 8});
}

TEST_CASE("a gate made whole is cut to match a grouped convolution's blocks, as in RegNet's squeeze-excitation",
          "[pruning][groups]") {
  auto m = net({{"pw", conv(3, 8)}, {"gc", conv(8, 8, 2)}, {"se1", conv(8, 2)}, {"se2", conv(2, 8)}, {"out", conv(8, 2)}},
               squeeze_excited("torch.relu(self.gc.forward(torch.relu(self.pw.forward(x))))"));
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& gc = group(a, "gc");
  CHECK_FALSE(gc.frozen);
  CHECK(gc.width == 4);
  CHECK(has_member(gc, "se1"));
  CHECK(has_member(gc, "se2"));
  CHECK(has_member(gc, "out"));
  std::vector<int64_t> se2_offsets = offsets_of(gc, "se2.weight");
  std::sort(se2_offsets.begin(), se2_offsets.end());
  CHECK(se2_offsets == std::vector<int64_t>{0, 4});

  zero_channels(m, "gc", {3, 7});
  Graph g2 = pruned(m, {1, 3, 8, 8}, {{"gc", 0.25}});
  CHECK(g2.param("se2.weight").size(0) == 6);
  CHECK(g2.param("se1.weight").size(1) == 6);
  CHECK(conv_attrs(g2, "gc").groups == 2);
  check_same_output(g2, m, {1, 3, 8, 8});
}

TEST_CASE("a depthwise convolution with a channel multiplier drops an input channel with its filters",
          "[pruning][groups]") {
  auto m = net({{"pw", conv(3, 4)}, {"dw", conv(4, 8, 4)}, {"out", conv(8, 2)}}, R"(
def forward(self, x):
    return self.out.forward(torch.relu(self.dw.forward(self.pw.forward(x))))
)");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& pw = group(a, "pw");
  CHECK(pw.width == 4);
  CHECK(has_member(pw, "dw"));
  CHECK(has_member(pw, "out"));
  for (const auto& s : pw.slices)
    if (s.param == "dw.weight" || s.param == "out.weight") CHECK(s.stride == 2);

  zero_channels(m, "pw", {1});
  zero_rows(m, "dw.bias", {2, 3});  // dw's filters of pw's channel 1 then make zeros
  Graph g2 = pruned(m, {1, 3, 8, 8}, {{"pw", 0.25}});
  const ConvAttrs& c = conv_attrs(g2, "dw");
  CHECK(c.groups == 3);
  CHECK(c.in_channels == 3);
  CHECK(c.out_channels == 6);
  CHECK(g2.param("dw.weight").sizes() == at::IntArrayRef({6, 1, 3, 3}));
  check_same_output(g2, m, {1, 3, 8, 8});
}

TEST_CASE("a channel shuffle keeps its blocks equal: channel j of every block goes, spread over the shuffled positions",
          "[pruning][groups]") {
  auto m = net({{"c", conv(3, 8)}, {"out", conv(8, 2)}},
               "def forward(self, x):\n    y = torch.relu(self.c.forward(x))\n" + shuffled("y") +
                   "    return self.out.forward(y)\n");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& c = group(a, "c");
  CHECK_FALSE(c.frozen);
  CHECK(c.width == 4);  // c's channels j and 4 + j go together
  bool read = false;
  for (const auto& sl : c.slices)
    if (sl.param == "out.weight") {
      CHECK(sl.stride == 2);  // after the shuffle they sit at 2j and 2j + 1
      read = true;
    }
  CHECK(read);
  zero_channels(m, "c", {1, 5});
  Graph g2 = pruned(m, {1, 3, 8, 8}, {{"c", 0.25}});
  CHECK(g2.param("c.weight").size(0) == 6);
  CHECK(g2.param("out.weight").size(1) == 6);
  check_same_output(g2, m, {1, 3, 8, 8});
}

TEST_CASE("a ShuffleNet unit: chunk halves stay equal, the branch couples with the passthrough through the shuffle",
          "[pruning][groups]") {
  const std::string head = "def forward(self, x):\n    z = torch.relu(self.c.forward(x))\n";
  const std::string tail = "    return self.out.forward(z)\n";
  auto m = net({{"c", conv(3, 8)}, {"b", conv(4, 4)}, {"out", conv(8, 2)}}, head + shuffle_unit("b") + tail);
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& c = group(a, "c");
  CHECK_FALSE(c.frozen);
  CHECK(c.width == 4);
  CHECK(has_member(c, "b"));    // b reads the second half and its output is coupled with the first
  CHECK(has_member(c, "out"));
  // c's channel 1 (both halves: 1 and 5) and b's output channel 1 go together.
  zero_channels(m, "c", {1, 5});
  zero_channels(m, "b", {1});
  Graph g2 = pruned(m, {1, 3, 8, 8}, {{"c", 0.25}});
  CHECK(g2.param("c.weight").size(0) == 6);
  CHECK(g2.param("b.weight").sizes() == at::IntArrayRef({3, 3, 3, 3}));
  CHECK(g2.param("out.weight").size(1) == 6);
  check_same_output(g2, m, {1, 3, 8, 8});

  // Two units: the second halves the shuffled passthrough again, so the
  // first's units pair up, and its branch's output (channels one position
  // apart) is coarsened to go two channels at a time beside them.
  auto two = net({{"c", conv(3, 8)}, {"b", conv(4, 4)}, {"b2", conv(4, 4)}, {"out", conv(8, 2)}},
                 head + shuffle_unit("b") + shuffle_unit("b2") + tail);
  Graph g4 = imported(two, {1, 3, 8, 8});
  auto a4 = analyze_groups(g4);
  const Group& c4 = group(a4, "c");
  CHECK_FALSE(c4.frozen);
  CHECK(c4.width == 2);
  CHECK(has_member(c4, "b2"));
  for (const auto& sl : c4.slices)
    if (sl.param == "b2.weight" && sl.dim == 0) CHECK(sl.stride == 2);
  PruneOptions half;
  half.ratios = {{"c", 0.5}};
  prune(g4, half);
  CHECK(g4.param("c.weight").size(0) == 4);
  CHECK(g4.param("b2.weight").size(0) == 2);
  check_runs(g4, two, {1, 3, 8, 8});

  // An odd split cannot stay equal: chunk of 3 parts of 8 channels freezes them, saying so.
  auto odd = net({{"c", conv(3, 8)}, {"out", conv(8, 2)}}, R"(
def forward(self, x):
    y = torch.relu(self.c.forward(x))
    x1, x2, x3 = torch.chunk(y, 3, 1)
    return self.out.forward(torch.cat([x1, x2, x3], 1))
)");
  Graph g3 = imported(odd, {1, 3, 8, 8});
  auto a3 = analyze_groups(g3);
  CHECK(group(a3, "c").frozen);
}

TEST_CASE("split at sizes: each part its own group, the sizes rewritten when they shrink", "[pruning][groups]") {
  auto m = net({{"c", conv(3, 8)}, {"a", conv(2, 4)}, {"out", conv(10, 2)}}, R"(
def forward(self, x):
    y = torch.relu(self.c.forward(x))
    p, q = torch.split(y, [2, 6], 1)
    return self.out.forward(torch.cat([torch.relu(self.a.forward(p)), q], 1))
)");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& first = group(a, "c");
  const Group& second = group(a, "c:2");  // c's channels 2..7
  CHECK(first.width == 2);
  CHECK(second.width == 6);
  CHECK(has_member(first, "a"));
  CHECK_FALSE(has_member(second, "a"));
  REQUIRE(a.splits.size() == 1);
  zero_channels(m, "c", {3, 6});
  Graph g2 = pruned(m, {1, 3, 8, 8}, {{"c:2", 2.0 / 6.0}});
  CHECK(g2.param("c.weight").size(0) == 6);
  CHECK(g2.param("out.weight").size(1) == 8);
  const Node* split = nullptr;
  for (const Node& n : g2.nodes())
    if (n.op_name() == "aten::split" || n.op_name() == "aten::split_with_sizes") split = &n;
  REQUIRE(split);
  CHECK(split->input(1).constant.toIntVector() == std::vector<int64_t>{2, 4});
  check_same_output(g2, m, {1, 3, 8, 8});

  // split(x, 4) of 8: two equal parts, coupled like chunk's; the size follows.
  auto even = net({{"c", conv(3, 8)}, {"out", conv(4, 2)}}, R"(
def forward(self, x):
    p, q = torch.split(torch.relu(self.c.forward(x)), 4, 1)
    return self.out.forward(p + q)
)");
  zero_channels(even, "c", {0, 4});
  Graph g3 = imported(even, {1, 3, 8, 8});
  auto a3 = analyze_groups(g3);
  CHECK(group(a3, "c").width == 4);
  PruneOptions quarter;
  quarter.ratios = {{"c", 0.25}};
  prune(g3, quarter);
  for (const Node& n : g3.nodes())
    if (n.op_name() == "aten::split") CHECK(n.input(1).constant.toInt() == 3);
  check_same_output(g3, even, {1, 3, 8, 8});
}

TEST_CASE("flatten -> linear spreads each channel over its spatial block", "[pruning][groups]") {
  auto m = net({{"c", conv(3, 4)}, {"fc", linear(4 * 5 * 5, 3)}}, R"(
def forward(self, x):
    return self.fc.forward(torch.flatten(torch.relu(self.c.forward(x)), 1))
)");
  Graph g = imported(m, {2, 3, 5, 5});
  auto a = analyze_groups(g);
  const Group& c = group(a, "c");
  bool found = false;
  for (const auto& s : c.slices)
    if (s.param == "fc.weight") {
      CHECK(s.stride == 25);
      CHECK(s.dim == 1);
      found = true;
    }
  CHECK(found);
  PruneOptions o;
  o.ratio = 0.5;
  prune(g, o);
  CHECK(g.param("fc.weight").size(1) == 2 * 25);
  check_runs(g, m, {2, 3, 5, 5});
}

TEST_CASE("a squeeze-excitation multiply couples the gate with the feature map", "[pruning][groups]") {
  auto m = net({{"c", conv(3, 8)}, {"se1", conv(8, 2)}, {"se2", conv(2, 8)}, {"out", conv(8, 2)}},
               squeeze_excited("torch.relu(self.c.forward(x))"));
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& c = group(a, "c");
  CHECK(has_member(c, "se2"));
  CHECK(has_member(c, "se1"));
  CHECK(has_member(c, "out"));
  CHECK_FALSE(c.frozen);
  CHECK(group(a, "se1").width == 2);
  PruneOptions o;
  o.ratios = {{"c", 0.5}};
  prune(g, o);
  CHECK(g.param("se2.weight").size(0) == 4);
  CHECK(g.param("se1.weight").size(1) == 4);
  check_runs(g, m, {1, 3, 8, 8});
}

TEST_CASE("an op with an unknown channel rule freezes what it touches, never guesses", "[pruning][groups]") {
  auto m = net({{"a", conv(3, 8)}, {"b", conv(8, 8)}, {"out", conv(8, 2)}}, R"(
def forward(self, x):
    y = self.a.forward(x)
    z = torch.cumsum(self.b.forward(y), 1)
    return self.out.forward(z)
)");
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  CHECK_FALSE(group(a, "a").frozen);
  CHECK(group(a, "b").frozen);
  CHECK(group(a, "b").frozen_reason.find("aten::cumsum") != std::string::npos);
  PruneOptions o;
  o.ratio = 0.5;
  PruneResult r = prune(g, o);
  CHECK(r.changes.size() == 1);
  CHECK(g.param("b.weight").sizes() == at::IntArrayRef({8, 4, 3, 3}));
  check_runs(g, m, {1, 3, 8, 8});
}

TEST_CASE("criteria rank channels as defined", "[pruning][criteria]") {
  auto m = net({{"a", conv(3, 4)}, {"b", bn(4)}, {"out", conv(4, 2)}}, R"(
def forward(self, x):
    return torch.mean(self.out.forward(torch.relu(self.b.forward(self.a.forward(x)))), [2, 3])
)");
  {
    torch::NoGradGuard no_grad;
    auto w = m.attr("a").toModule().attr("weight").toTensor();
    w.zero_();
    for (int64_t c = 0; c < 4; ++c) w[c].fill_(static_cast<double>(c + 1));  // L1 ranks 3 > 2 > 1 > 0
    m.attr("out").toModule().attr("weight").toTensor().fill_(1.0);
    auto gamma = m.attr("b").toModule().attr("weight").toTensor();
    gamma.copy_(at::tensor({4.0, 3.0, 2.0, 1.0}));  // BN ranks the other way
  }
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  PruneOptions o;
  auto l1 = channel_importance(g, a, o)[static_cast<size_t>(a.find("a"))];
  CHECK(std::is_sorted(l1.begin(), l1.end()));
  o.criterion = Criterion::BatchNorm;
  auto bns = channel_importance(g, a, o)[static_cast<size_t>(a.find("a"))];
  CHECK(std::is_sorted(bns.rbegin(), bns.rend()));
  o.criterion = Criterion::Random;
  auto r1 = channel_importance(g, a, o)[0];
  auto r2 = channel_importance(g, a, o)[0];
  CHECK(r1 == r2);  // seeded
  // Taylor: a dead channel (zero filter and bias, batch norm passing zero
  // on) changes nothing when removed: every grad * weight of it is zero.
  {
    torch::NoGradGuard no_grad;
    for (const char* name : {"a.weight", "a.bias", "b.bias", "b.running_mean"}) {
      at::Tensor t = g.param(name).clone();
      t[1].zero_();
      g.set_param(name, t);
    }
  }
  data::TensorDataset ds;
  ds.inputs = at::randn({32, 3, 8, 8});
  ds.labels = at::randint(0, 2, {32});
  ds.num_classes = 2;
  o.criterion = Criterion::Taylor;
  o.data = &ds;
  auto t = channel_importance(g, a, o)[static_cast<size_t>(a.find("a"))];
  CHECK(t[1] == 0.0);
  CHECK(t[0] > 0.0);
  CHECK(t[3] > 0.0);
  // Pruning half by L1 keeps channels 2 and 3: their weights are 3 and 4.
  o.criterion = Criterion::L1;
  o.ratios = {{"a", 0.5}};
  prune(g, o);
  at::Tensor kept = g.param("a.weight");
  CHECK(kept[0].abs().max().item<double>() == 3.0);
  CHECK(kept[1].abs().max().item<double>() == 4.0);
}

TEST_CASE("bad budgets and names are refused with one clear reason", "[pruning][errors]") {
  auto m = net({{"a", conv(3, 8)}, {"out", conv(8, 2)}}, "def forward(self, x):\n    return self.out.forward(self.a.forward(x))\n");
  Graph g = imported(m, {1, 3, 8, 8});
  PruneOptions o;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("give exactly one budget"));
  o.ratio = 1.2;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("--ratio must be in (0, 1)"));
  o.ratio.reset();
  o.target_macs = 0.01;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("impossible budget"));
  o.target_macs.reset();
  o.ratios = {{"aa", 0.5}};
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("'aa' names no pruning group (did you mean 'a'?)"));
  o.ratios = {{"a", 0.5}};
  o.ignore = {"nothere"};
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("--ignore: 'nothere'"));
  CHECK_THROWS_WITH(parse_criterion("taylr"), Catch::Contains("unknown pruning criterion 'taylr'"));
  o.ignore.clear();
  o.criterion = Criterion::Taylor;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("the taylor criterion needs data"));
  o.criterion = Criterion::L1;
  Graph no_shape = import_module(m);
  CHECK_THROWS_WITH(prune(no_shape, o), Catch::Contains("needs the model's input shape"));
}

TEST_CASE("batch-norm statistics are re-estimated from data", "[pruning][recalibrate]") {
  auto m = net({{"a", conv(3, 4)}, {"b", bn(4)}, {"out", conv(4, 2)}}, R"(
def forward(self, x):
    return torch.mean(self.out.forward(torch.relu(self.b.forward(self.a.forward(x)))), [2, 3])
)");
  Graph g = imported(m, {1, 3, 8, 8});
  data::TensorDataset ds;
  ds.inputs = at::randn({40, 3, 8, 8}) * 2 + 1;
  ds.labels = at::zeros({40}, at::kLong);
  ds.num_classes = 2;
  CHECK(recalibrate_batch_norm(g, ds, /*batches=*/3, /*batch_size=*/16) == 1);
  // The statistics of the conv output over all 40 samples (3 batches of 16 cover them).
  at::Tensor y = at::conv2d(ds.inputs, g.param("a.weight"), g.param("a.bias"), 1, 1).to(at::kDouble);
  at::Tensor mean = y.mean({0, 2, 3}), var = y.var({0, 2, 3}, /*unbiased=*/true);
  CHECK(at::allclose(g.param("b.running_mean").to(at::kDouble), mean, 1e-4, 1e-5));
  CHECK(at::allclose(g.param("b.running_var").to(at::kDouble), var, 1e-4, 1e-5));
  // Only the batches asked for: one batch of 16 gives those 16 samples' statistics.
  Graph h = imported(m, {1, 3, 8, 8});
  recalibrate_batch_norm(h, ds, 1, 16);
  at::Tensor y16 = y.narrow(0, 0, 16);
  CHECK(at::allclose(h.param("b.running_mean").to(at::kDouble), y16.mean({0, 2, 3}), 1e-4, 1e-5));
}

TEST_CASE("a deeper batch norm is re-estimated for the re-estimated network upstream of it", "[pruning][recalibrate]") {
  auto m = net({{"a", conv(3, 4)}, {"b1", bn(4)}, {"c", conv(4, 3)}, {"b2", bn(3)}}, R"(
def forward(self, x):
    y = torch.relu(self.b1.forward(self.a.forward(x)))
    return torch.mean(self.b2.forward(self.c.forward(y)), [2, 3])
)");
  Graph g = imported(m, {1, 3, 8, 8});
  data::TensorDataset ds;
  ds.inputs = at::randn({40, 3, 8, 8}) * 3 + 2;
  ds.labels = at::zeros({40}, at::kLong);
  ds.num_classes = 2;
  // b1's stored statistics are far from its real input's (as after pruning):
  // b2 must be estimated for b1 as re-estimated, not for the stale b1.
  g.set_param("b1.running_mean", at::full({4}, -10.0));
  g.set_param("b1.running_var", at::full({4}, 100.0));
  CHECK(recalibrate_batch_norm(g, ds, /*batches=*/1, /*batch_size=*/40) == 2);
  at::Tensor y1 = at::conv2d(ds.inputs, g.param("a.weight"), g.param("a.bias"), 1, 1);
  CHECK(at::allclose(g.param("b1.running_mean"), y1.mean({0, 2, 3}), 1e-4, 1e-4));
  // One batch holding every sample: b1 normalises with exactly those statistics.
  at::Tensor normed = at::batch_norm(y1, g.param("b1.weight"), g.param("b1.bias"), {}, {}, /*training=*/true, 0.1, 1e-5,
                                     false);
  at::Tensor y2 = at::conv2d(at::relu(normed), g.param("c.weight"), g.param("c.bias"), 1, 1).to(at::kDouble);
  CHECK(at::allclose(g.param("b2.running_mean").to(at::kDouble), y2.mean({0, 2, 3}), 1e-4, 1e-4));
  CHECK(at::allclose(g.param("b2.running_var").to(at::kDouble), y2.var({0, 2, 3}, /*unbiased=*/true), 1e-4, 1e-4));
}

TEST_CASE("torchvision models prune to half their MACs and keep their output shape", "[pruning][e2e]") {
  at::set_num_threads(1);
  for (const char* name : {"resnet18", "mobilenet_v2"}) {
    INFO(name);
    auto original = torch::jit::load(compress::testing::fixture(std::string(name) + ".pt"));
    original.eval();
    Graph g = imported(original, {1, 3, 224, 224});
    PruneOptions o;
    o.target_macs = 0.5;
    o.round_to = 8;
    PruneResult r = prune(g, o);
    CHECK(r.macs_after <= 0.5 * r.macs_before);
    CHECK(r.macs_after >= 0.4 * r.macs_before);  // the search lands near the budget
    CHECK(r.params_after < r.params_before);
    for (const auto& c : r.changes) CHECK(c.after % 8 == 0);
    check_runs(g, original, {2, 3, 224, 224});
  }
}

TEST_CASE("torchvision ResNeXt and RegNet blocks prune through their grouped convolutions", "[pruning][e2e]") {
  at::set_num_threads(1);
  for (const char* name : {"resnext_tiny", "regnet_tiny"}) {
    INFO(name);
    auto original = torch::jit::load(compress::testing::fixture(std::string(name) + ".pt"));
    original.eval();
    Graph g = imported(original, {1, 3, 64, 64});
    std::map<std::string, ConvAttrs> before;
    for (const Node& n : g.nodes())
      if (n.is_leaf(LeafKind::Conv2d) && std::get<ConvAttrs>(n.attrs).groups > 1) before[n.module] = std::get<ConvAttrs>(n.attrs);
    REQUIRE(!before.empty());
    auto a = analyze_groups(g);
    for (const Group& grp : a.groups)  // only the classifier's outputs are frozen
      CHECK((!grp.frozen || grp.frozen_reason == "returned by the model"));
    PruneOptions o;
    o.target_macs = 0.5;
    PruneResult r = prune(g, o);
    CHECK(r.macs_after <= 0.5 * r.macs_before);
    CHECK(r.macs_after >= 0.4 * r.macs_before);
    int shrunk = 0;
    for (const Node& n : g.nodes()) {
      auto it = before.find(n.module);
      if (!n.is_leaf(LeafKind::Conv2d) || it == before.end()) continue;
      const auto& c = std::get<ConvAttrs>(n.attrs);
      CHECK(c.groups == it->second.groups);  // the groups stay, each shrinks
      CHECK(c.in_channels % c.groups == 0);
      shrunk += c.in_channels < it->second.in_channels;
    }
    CHECK(shrunk > 0);
    check_runs(g, original, {2, 3, 64, 64});
  }
}

TEST_CASE("attention heads are pruned whole: q, k, v rows and out_proj columns", "[pruning][attention]") {
  at::set_num_threads(1);
  for (const char* name : {"vit_small", "vit_small_grad"}) {  // fused and decomposed attention
    INFO(name);
    auto original = torch::jit::load(compress::testing::fixture(std::string(name) + ".pt"));
    original.eval();
    Graph g = imported(original, {2, 3, 32, 32});
    auto a = analyze_groups(g);
    const std::string heads = "encoder.layers.encoder_layer_0.self_attention:heads";
    const Group& grp = group(a, heads);
    CHECK(grp.width == 4);
    CHECK_FALSE(grp.frozen);
    PruneOptions o;
    o.ratios = {{heads, 0.5}};
    PruneResult r = prune(g, o);
    REQUIRE(r.changes.size() == 1);
    CHECK(r.changes[0].after == 2);
    const std::string attn = "encoder.layers.encoder_layer_0.self_attention";
    const auto& attrs = std::get<AttentionAttrs>(g.producer(g.value_named(attn))->attrs);
    CHECK(attrs.num_heads == 2);
    CHECK(attrs.inner_dim() == attrs.embed_dim / 2);
    CHECK_FALSE(attrs.fused);
    CHECK(g.param(attn + ".in_proj_weight").size(0) == 3 * attrs.inner_dim());
    CHECK(g.param(attn + ".out_proj.weight").size(1) == attrs.inner_dim());
    CHECK(r.macs_after < r.macs_before);
    check_runs(g, original, {2, 3, 32, 32});
    // The pruned attention survives export -> import (its head size is saved).
    Graph again = import_module(export_module(g));
    CHECK(std::get<AttentionAttrs>(again.producer(again.value_named(attn))->attrs).num_heads == 2);
  }
}

TEST_CASE("an unsqueezed squeeze-excitation gate couples, an unknown operand of an add freezes in either order",
          "[pruning][groups]") {
  // SE written with linear layers and unsqueeze, as the zoo's senet.
  auto se = net({{"c", conv(3, 8)}, {"fc1", linear(8, 2)}, {"fc2", linear(2, 8)}, {"out", conv(8, 2)}}, R"(
def forward(self, x):
    y = torch.relu(self.c.forward(x))
    s = torch.sigmoid(self.fc2.forward(torch.relu(self.fc1.forward(torch.mean(y, [2, 3])))))
    return self.out.forward(y * s.unsqueeze(2).unsqueeze(3))
)");
  Graph g = imported(se, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  const Group& c = group(a, "c");
  CHECK_FALSE(c.frozen);
  CHECK(has_member(c, "fc2"));
  CHECK(has_member(c, "fc1"));
  PruneOptions o;
  o.ratios = {{"c", 0.5}};
  prune(g, o);
  CHECK(g.param("fc2.weight").size(0) == 4);
  CHECK(g.param("fc1.weight").size(1) == 4);
  check_runs(g, se, {1, 3, 8, 8});

  // A residual add whose other operand has channels of unknown origin (a
  // cumsum over them): the known operand's group freezes, whichever comes first.
  for (const char* expr : {"torch.cumsum(self.b.forward(x), 1) + y", "y + torch.cumsum(self.b.forward(x), 1)"}) {
    INFO(expr);
    auto m = net({{"a", conv(3, 8)}, {"b", conv(3, 8)}, {"out", conv(8, 2)}},
                 std::string("def forward(self, x):\n    y = self.a.forward(x)\n    return self.out.forward(") + expr +
                     ")\n");
    Graph h = imported(m, {1, 3, 8, 8});
    auto groups = analyze_groups(h);
    CHECK(group(groups, "a").frozen);
  }
}

TEST_CASE("the attention criterion: head gates, activation attention, squeeze-excitation gates", "[pruning][criteria]") {
  data::TensorDataset ds;
  ds.inputs = at::randn({48, 3, 8, 8});
  ds.labels = at::randint(0, 2, {48});
  ds.num_classes = 2;
  PruneOptions o;
  o.criterion = Criterion::Attention;
  o.taylor_batch_size = 16;

  // Channels: a dead channel (its activations are zero) scores zero; a
  // channel the reader ignores (zero weights) scores zero; the rest score
  // by activation times the reader's weights.
  auto m = net({{"a", conv(3, 4)}, {"out", conv(4, 2)}}, R"(
def forward(self, x):
    return torch.mean(self.out.forward(torch.relu(self.a.forward(x))), [2, 3])
)");
  {
    torch::NoGradGuard no_grad;
    auto w = m.attr("a").toModule().attr("weight").toTensor();
    auto b = m.attr("a").toModule().attr("bias").toTensor();
    w[1].zero_();
    b[1].fill_(-1.0);  // relu(-1) = 0: never active
    auto r = m.attr("out").toModule().attr("weight").toTensor();
    r.select(1, 2).zero_();  // channel 2 is read by nobody
  }
  Graph g = imported(m, {1, 3, 8, 8});
  auto a = analyze_groups(g);
  CHECK_THROWS_WITH(channel_importance(g, a, o), Catch::Contains("the attention criterion needs data"));
  o.data = &ds;
  auto s = channel_importance(g, a, o)[static_cast<size_t>(a.find("a"))];
  REQUIRE(s.size() == 4);
  CHECK(s[1] == 0.0);
  CHECK(s[2] == 0.0);
  CHECK(s[0] > 0.0);
  CHECK(s[3] > 0.0);

  // The reader's weights count by their L2 norm (the size of what the
  // reader's output loses), not their mean |w|: with equal activations, a
  // channel read through one large weight (norm 4, mean 1) outranks one
  // read through four small ones (norm 2.4, mean 1.2).
  auto two = net({{"a", linear(3, 2)}, {"out", linear(2, 4)}}, R"(
def forward(self, x):
    return self.out.forward(torch.relu(self.a.forward(x)))
)");
  {
    torch::NoGradGuard no_grad;
    auto w = two.attr("a").toModule().attr("weight").toTensor();
    w.zero_();
    two.attr("a").toModule().attr("bias").toTensor().fill_(1.0);  // both channels read 1.0 always
    auto r = two.attr("out").toModule().attr("weight").toTensor();
    r.select(1, 0).copy_(at::tensor({4.0f, 0.0f, 0.0f, 0.0f}));
    r.select(1, 1).fill_(1.2f);
  }
  data::TensorDataset flat;
  flat.inputs = at::randn({32, 3});
  flat.labels = at::randint(0, 2, {32});
  flat.num_classes = 2;
  PruneOptions fo = o;
  fo.data = &flat;
  Graph fg = imported(two, {1, 3});
  auto fa = analyze_groups(fg);
  auto fs = channel_importance(fg, fa, fo)[static_cast<size_t>(fa.find("a"))];
  REQUIRE(fs.size() == 2);
  CHECK(fs[0] > fs[1]);
  CHECK(fs[0] / fs[1] == Approx(4.0 / 2.4));

  // A squeeze-excitation gate held shut on one channel (its bias -30:
  // sigmoid ~ 1e-13) scores that channel near zero, though its activations are live.
  auto se = net({{"c", conv(3, 4)}, {"fc1", linear(4, 2)}, {"fc2", linear(2, 4)}, {"out", conv(4, 2)}}, R"(
def forward(self, x):
    y = torch.relu(self.c.forward(x)) + 1.0
    s = torch.sigmoid(self.fc2.forward(torch.relu(self.fc1.forward(torch.mean(y, [2, 3])))))
    return torch.mean(self.out.forward(y * s.unsqueeze(2).unsqueeze(3)), [2, 3])
)");
  {
    torch::NoGradGuard no_grad;
    se.attr("fc2").toModule().attr("weight").toTensor()[3].zero_();
    se.attr("fc2").toModule().attr("bias").toTensor()[3] = -30.0;
  }
  Graph h = imported(se, {1, 3, 8, 8});
  auto ha = analyze_groups(h);
  auto hs = channel_importance(h, ha, o)[static_cast<size_t>(ha.find("c"))];
  REQUIRE(hs.size() == 4);
  CHECK(hs[3] < 1e-9 * hs[0]);
  CHECK(hs[0] > 0.0);
}

TEST_CASE("the attention criterion scores heads by their gate sensitivity and prunes the zoo vit's heads",
          "[pruning][attention][criteria]") {
  compress::models::ZooModel z = compress::models::build("vit", 0);
  Graph g = imported(z.module, {1, 1, 28, 28});
  auto a = analyze_groups(g);
  const std::string heads = "encoder.0.self_attention:heads";
  REQUIRE(a.find(heads) >= 0);
  CHECK_FALSE(group(a, heads).frozen);
  // Head 2 of block 0 silenced: out_proj reads nothing of it, so its gate
  // has no effect on the loss.
  {
    at::Tensor w = g.param("encoder.0.self_attention.out_proj.weight").clone();
    const int64_t d = w.size(1) / 4;
    w.narrow(1, 2 * d, d).zero_();
    g.set_param("encoder.0.self_attention.out_proj.weight", w);
  }
  data::TensorDataset ds;
  ds.inputs = at::rand({32, 1, 28, 28});
  ds.labels = at::randint(0, 10, {32});
  ds.num_classes = 10;
  PruneOptions o;
  o.criterion = Criterion::Attention;
  o.data = &ds;
  o.taylor_batch_size = 16;
  auto s = channel_importance(g, a, o)[static_cast<size_t>(a.find(heads))];
  REQUIRE(s.size() == 4);
  CHECK(s[2] == 0.0);
  CHECK(s[0] > 0.0);
  o.ratios = {{heads, 0.25}};
  PruneResult r = prune(g, o);
  REQUIRE(r.changes.size() == 1);
  CHECK(r.changes[0].after == 3);
  // The silenced head went: the output is unchanged.
  torch::NoGradGuard no_grad;
  at::Tensor x = at::rand({2, 1, 28, 28});
  torch::jit::Module before = z.module;
  before.eval();
  {
    auto w = before.attr("encoder").toModule().attr("0").toModule().attr("self_attention").toModule()
                 .attr("out_proj").toModule().attr("weight").toTensor();
    const int64_t d = w.size(1) / 4;
    w.narrow(1, 2 * d, d).zero_();
  }
  torch::jit::Module after = export_module(g);
  after.eval();
  CHECK(at::allclose(before.forward({x}).toTensor(), after.forward({x}).toTensor(), 1e-4, 1e-5));
}

namespace {

// conv -> depthwise conv -> conv -> mean -> linear: two prunable groups (a's
// channels, which the depthwise conv passes on, and b's), four timed layers.
torch::jit::Module latency_net() {
  return net({{"a", conv(3, 16)}, {"dw", conv(16, 16, 16)}, {"b", conv(16, 24)}, {"fc", linear(24, 4)}}, R"(
def forward(self, x):
    y = self.b.forward(torch.relu(self.dw.forward(torch.relu(self.a.forward(x)))))
    return self.fc.forward(torch.mean(y, [2, 3]))
)");
}

// A synthetic table for `g`'s layers: each layer's time proportional to its
// kept input and output fractions (a depthwise layer's to its output), with
// the given full-width times; nothing is timed, so searches are deterministic.
latency::LatencyTable synthetic_table(const Graph& g, const std::vector<double>& full_ms, int grid = 4) {
  std::vector<latency::LayerShape> shapes = latency::latency_layers(g);
  REQUIRE(shapes.size() == full_ms.size());
  std::vector<latency::LayerTable> layers;
  for (size_t l = 0; l < shapes.size(); ++l) {
    latency::LayerTable t;
    t.layer = shapes[l];
    t.ms.assign(size_t(grid), std::vector<double>(size_t(grid)));
    for (int i = 0; i < grid; ++i)
      for (int o = 0; o < grid; ++o)
        t.ms[size_t(i)][size_t(o)] = full_ms[l] * (o + 1.0) / grid * (shapes[l].depthwise ? 1.0 : (i + 1.0) / grid);
    layers.push_back(std::move(t));
  }
  latency::LatencyOptions lo;
  lo.grid = grid;
  return latency::LatencyTable(std::move(layers), lo);
}

// The table's prediction for a pruned graph, read from its weights' shapes
// against the original's (independently of the pruning engine's plan).
double predicted_from_shapes(const latency::LatencyTable& table, const Graph& original, const Graph& pruned, double overhead) {
  double total = overhead;
  for (size_t l = 0; l < table.layers().size(); ++l) {
    const std::string w = table.layers()[l].layer.name + ".weight";
    const double out = double(pruned.param(w).size(0)) / double(original.param(w).size(0));
    const double in = double(pruned.param(w).size(1)) / double(original.param(w).size(1));
    total += table.layer_ms(l, table.layers()[l].layer.depthwise ? out : in, out);
  }
  return total;
}

}  // namespace

TEST_CASE("a grouped convolution's latency entries are timed with its groups, and the table keeps them",
          "[pruning][latency]") {
  at::set_num_threads(1);
  auto m = net({{"a", conv(3, 8)}, {"gc", conv(8, 8, 4)}, {"b", conv(8, 2)}}, R"(
def forward(self, x):
    return self.b.forward(torch.relu(self.gc.forward(torch.relu(self.a.forward(x)))))
)");
  Graph g = imported(m, {1, 3, 8, 8});
  std::vector<latency::LayerShape> shapes = latency::latency_layers(g);
  REQUIRE(shapes.size() == 3);
  CHECK(shapes[1].groups == 4);
  CHECK_FALSE(shapes[1].depthwise);
  CHECK(shapes[0].groups == 1);
  latency::LatencyOptions lo;
  lo.grid = 8;  // 1/8 of 8 channels would be one, fewer than the 4 groups: timed at one a group
  lo.repeats = 1;
  lo.rounds = 1;
  latency::LatencyTable table = latency::LatencyTable::measure(shapes, lo);
  for (const auto& row : table.layers()[1].ms)
    for (double ms : row) CHECK(ms > 0);
  latency::LatencyTable back = latency::LatencyTable::from_json(table.to_json(), "table.json");
  CHECK(back.layers()[1].layer.groups == 4);
  CHECK(back.layers()[0].layer.groups == 1);
}

TEST_CASE("a latency budget: the search meets the predicted budget with the least pruning", "[pruning][latency]") {
  auto m = latency_net();
  const Graph original = imported(m, {1, 3, 8, 8});
  latency::LatencyTable table = synthetic_table(original, {1.0, 0.5, 2.0, 0.25});
  REQUIRE(table.layers()[1].layer.depthwise);
  table.set_overhead_ms(0.5);
  const double full = 0.5 + 1.0 + 0.5 + 2.0 + 0.25;
  for (bool global : {false, true}) {
    for (int64_t round_to : {1, 4}) {
      INFO("global " << global << ", round to " << round_to);
      PruneOptions o;
      o.global = global;
      o.round_to = round_to;
      o.latency = &table;
      o.target_latency_ms = 0.6 * full;
      Graph g = original;
      PruneResult r = prune(g, o);
      CHECK(r.predicted_ms_before == Approx(full));
      CHECK(r.predicted_ms_after <= *o.target_latency_ms);
      CHECK(r.predicted_ms_after == Approx(predicted_from_shapes(table, original, g, 0.5)));
      CHECK(r.predicted_ms_smallest < r.predicted_ms_after);
      CHECK_FALSE(r.changes.empty());
      for (const auto& c : r.changes) CHECK((c.after % round_to == 0 || c.after == c.before));
      check_runs(g, m, {2, 3, 8, 8});
      // The least pruning that meets it: a slightly smaller fraction misses it.
      PruneOptions less = o;
      less.target_latency_ms.reset();
      less.ratio = r.ratio_used - 1e-6;
      Graph h = original;
      CHECK(prune(h, less).predicted_ms_after > *o.target_latency_ms);
    }
  }
  // A budget the unpruned model meets prunes nothing.
  PruneOptions o;
  o.latency = &table;
  o.target_latency_ms = 2 * full;
  Graph g = original;
  CHECK(prune(g, o).changes.empty());
  // With a second overhead point, the smallest model predicts its own overhead.
  table.set_overhead_ms(0.5, 0.1);
  o.target_latency_ms = full;
  PruneResult r = prune(g, o);
  CHECK(r.predicted_ms_before == Approx(full));
  PruneOptions least;
  least.ratio = 0.99;
  Graph smallest = original;
  prune(smallest, least);
  CHECK(r.predicted_ms_smallest == Approx(predicted_from_shapes(table, original, smallest, 0.1)));
}

TEST_CASE("a latency budget is checked by measurement and tightened when the model runs slower", "[pruning][latency]") {
  auto m = latency_net();
  const Graph original = imported(m, {1, 3, 8, 8});
  latency::LatencyTable table = synthetic_table(original, {1.0, 0.5, 2.0, 0.25});
  table.set_overhead_ms(0.5);
  const double full = 4.25;
  PruneOptions o;
  o.latency = &table;
  o.target_latency_ms = 0.7 * full;
  // A machine 25% slower than the table predicts: the first try misses by
  // more than the 5% tolerance; each next try asks the table for
  // budget / measured less, until one measures within the tolerance.
  int calls = 0;
  auto slow = [&](const Graph& g) {
    ++calls;
    return 1.25 * predicted_from_shapes(table, original, g, 0.5);
  };
  Graph g = original;
  const double target = *o.target_latency_ms;
  PruneResult r = prune_to_latency(g, o, slow, 0.05, 4);
  const auto& tries = r.latency_attempts;
  REQUIRE(tries.size() >= 2);
  CHECK(calls == int(tries.size()));
  CHECK(r.latency_met);
  CHECK(tries[0].budget_ms == target);
  for (size_t k = 1; k < tries.size(); ++k) {
    CHECK(tries[k - 1].measured_ms > 1.05 * target);
    CHECK(tries[k].budget_ms == Approx(tries[k - 1].budget_ms * target / tries[k - 1].measured_ms));
    CHECK(tries[k].ratio > tries[k - 1].ratio);
  }
  CHECK(r.measured_ms == tries.back().measured_ms);
  CHECK(r.measured_ms <= 1.05 * target);
  CHECK(r.measured_ms == Approx(slow(g)));  // the graph is the chosen try
  check_runs(g, m, {2, 3, 8, 8});
  // A machine the budget cannot be met on: at most the tries asked for, no
  // tighter than the smallest model, and the fastest try kept.
  Graph h = original;
  PruneResult never = prune_to_latency(h, o, [&](const Graph& x) { return 10 * predicted_from_shapes(table, original, x, 0.5); }, 0.05, 3);
  CHECK_FALSE(never.latency_met);
  CHECK(never.latency_attempts.size() <= 3);
  double fastest = 1e300;
  for (const auto& t : never.latency_attempts) {
    CHECK(t.budget_ms >= never.predicted_ms_smallest - 1e-12);
    fastest = std::min(fastest, t.measured_ms);
  }
  CHECK(never.measured_ms == fastest);
  // Measured within tolerance at once: one try.
  Graph k = original;
  CHECK(prune_to_latency(k, o, [&](const Graph& x) { return predicted_from_shapes(table, original, x, 0.5); }).latency_attempts.size() == 1);
}

TEST_CASE("a speed-up budget is the unpruned prediction over the speed-up, searched and checked as a latency budget", "[pruning][latency]") {
  auto m = latency_net();
  const Graph original = imported(m, {1, 3, 8, 8});
  latency::LatencyTable table = synthetic_table(original, {1.0, 0.5, 2.0, 0.25});
  table.set_overhead_ms(0.5, 0.1);
  const double full = 4.25;
  for (bool aware : {false, true}) {
    INFO("latency-aware " << aware);
    PruneOptions by_speedup;
    by_speedup.latency = &table;
    by_speedup.latency_aware = aware;
    by_speedup.target_speedup = 1.6;
    Graph g = original;
    const PruneResult r = prune(g, by_speedup);
    CHECK(r.predicted_ms_before == Approx(full));
    CHECK(r.latency_budget_ms == Approx(full / 1.6));
    CHECK(r.predicted_ms_after <= r.latency_budget_ms);
    CHECK(r.predicted_ms_before / r.predicted_ms_after >= 1.6);
    CHECK(r.to_json()["predicted_ms"]["budget"].get<double>() == Approx(full / 1.6));
    CHECK(by_speedup.to_json()["target_speedup"] == 1.6);
    // The same widths as the budget in ms.
    PruneOptions by_ms = by_speedup;
    by_ms.target_speedup.reset();
    by_ms.target_latency_ms = full / 1.6;
    Graph h = original;
    const PruneResult same = prune(h, by_ms);
    REQUIRE(same.changes.size() == r.changes.size());
    for (size_t i = 0; i < r.changes.size(); ++i) CHECK(same.changes[i].after == r.changes[i].after);
  }
  // Checked by measurement: a machine 25% slower than the table is tightened
  // towards the speed-up's budget in ms, which the result reports.
  PruneOptions o;
  o.latency = &table;
  o.target_speedup = 1.6;
  Graph g = original;
  const PruneResult r =
      prune_to_latency(g, o, [&](const Graph& x) { return 1.25 * predicted_from_shapes(table, original, x, 0.5); }, 0.05, 4);
  REQUIRE(r.latency_attempts.size() >= 2);
  CHECK(r.latency_attempts[0].budget_ms == Approx(full / 1.6));
  CHECK(r.latency_attempts[1].budget_ms < r.latency_attempts[0].budget_ms);
  CHECK(r.latency_budget_ms == Approx(full / 1.6));
  CHECK(r.latency_met);
  CHECK(r.measured_ms <= 1.05 * full / 1.6);
  // Refused: a speed-up of at most 1, or more than the smallest model gives
  // (the message says how much that is), or beside another budget.
  for (double bad : {1.0, 0.5, std::nan("")}) {
    o.target_speedup = bad;
    Graph x = original;
    CHECK_THROWS_WITH(prune(x, o), Catch::Contains("--target-speedup must be a number above 1"));
  }
  o.target_speedup = 100;
  Graph x = original;
  CHECK_THROWS_WITH(prune(x, o), Catch::Contains("impossible budget") && Catch::Contains("x faster than the unpruned model") &&
                                     Catch::Contains("less than the 100x asked for"));
  o.target_speedup = 1.5;
  o.target_latency_ms = 3.0;
  CHECK_THROWS_WITH(prune(x, o), Catch::Contains("exactly one budget"));
  o.target_latency_ms.reset();
  o.latency = nullptr;
  CHECK_THROWS_WITH(prune(x, o), Catch::Contains("needs a latency table"));
  CHECK(x.param("a.weight").size(0) == 16);  // nothing pruned by the refusals
}

TEST_CASE("bad latency budgets are refused with one clear reason", "[pruning][latency][errors]") {
  auto m = latency_net();
  const Graph original = imported(m, {1, 3, 8, 8});
  latency::LatencyTable table = synthetic_table(original, {1.0, 0.5, 2.0, 0.25});
  table.set_overhead_ms(0.5);
  Graph g = original;
  PruneOptions o;
  o.target_latency_ms = 1.0;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("needs a latency table"));
  o.latency = &table;
  for (double bad : {0.0, -2.0}) {
    o.target_latency_ms = bad;
    CHECK_THROWS_WITH(prune(g, o), Catch::Contains("--target-latency must be a positive number of ms"));
  }
  o.target_latency_ms = 0.1;  // below the smallest model's prediction
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("impossible budget") && Catch::Contains("ms asked for"));
  CHECK_THROWS_WITH(prune_to_latency(g, o, [](const Graph&) { return 1.0; }), Catch::Contains("impossible budget"));
  o.target_latency_ms = 3.0;
  o.target_macs = 0.5;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("exactly one budget"));
  o.target_macs.reset();
  o.ratio = 0.3;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("exactly one budget"));
  o.ratio.reset();
  CHECK(g.param("a.weight").size(0) == 16);  // nothing pruned by the refusals
  // A table of another model.
  auto other = net({{"z", conv(3, 8)}, {"out", conv(8, 2)}}, "def forward(self, x):\n    return self.out.forward(self.z.forward(x))\n");
  Graph og = imported(other, {1, 3, 8, 8});
  latency::LatencyTable foreign = synthetic_table(og, {1.0, 1.0});
  o.latency = &foreign;
  CHECK_THROWS_WITH(prune(g, o), Catch::Contains("the latency table does not match the model"));
  o.latency = nullptr;
  CHECK_THROWS_WITH(prune_to_latency(g, PruneOptions{}, [](const Graph&) { return 1.0; }), Catch::Contains("needs a latency budget"));
  CHECK_THROWS_WITH(latency::LatencyTable({latency::LayerTable{}}, latency::LatencyOptions{}), Catch::Contains("needs 8 x 8 times"));
}

TEST_CASE("the latency-aware ranking meets a MACs budget with the time the table says is cheapest to save", "[pruning][latency]") {
  auto m = latency_net();
  const Graph original = imported(m, {1, 3, 8, 8});
  // The depthwise layer is slow for its few MACs (memory-bound, as on a
  // CPU): group `a` (a's outputs, dw, b's inputs) holds most of the time,
  // group `b` (b's outputs, fc's inputs) most of the MACs with little time.
  latency::LatencyTable table = synthetic_table(original, {0.2, 4.0, 0.2, 0.05});
  table.set_overhead_ms(0.5);
  for (int64_t round_to : {1, 4}) {
    INFO("round to " << round_to);
    PruneOptions o;
    o.target_macs = 0.5;
    o.round_to = round_to;
    o.latency = &table;
    Graph uniform = original, global = original, aware = original;
    const PruneResult ru = prune(uniform, o);
    o.global = true;
    const PruneResult rg = prune(global, o);
    o.global = false;
    o.latency_aware = true;
    const PruneResult ra = prune(aware, o);
    CHECK(ra.macs_after <= 0.5 * double(ra.macs_before));
    CHECK(ra.predicted_ms_after == Approx(predicted_from_shapes(table, original, aware, 0.5)));
    if (round_to == 1) {
      // Same MACs budget, less predicted time than one ratio or one
      // threshold everywhere. (With widths in steps of 4 on groups of 16 and
      // 24 the uniform ratio overshoots the budget: fewer MACs, not comparable.)
      CHECK(ra.predicted_ms_after < ru.predicted_ms_after);
      CHECK(ra.predicted_ms_after < rg.predicted_ms_after);
      // It shrank the slow group further than the uniform ratio did.
      CHECK(aware.param("dw.weight").size(0) < uniform.param("dw.weight").size(0));
    }
    CHECK(aware.param("dw.weight").size(0) == 8);  // the slow group goes first, down to the cap
    for (const auto& c : ra.changes) {
      CHECK((c.after % round_to == 0 || c.after == c.before));
      CHECK(c.after >= c.before / 2);  // max_group_ratio 0.5: no group loses more than half
    }
    // Within a group the least important channels went: the kept rows of a
    // are its highest-L1 ones, in order.
    GroupAnalysis an = analyze_groups(original);
    const auto scores = channel_importance(original, an, o)[size_t(an.find("a"))];
    const int64_t kept = aware.param("a.weight").size(0);
    std::vector<int64_t> order(scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return scores[x] > scores[y]; });
    order.resize(size_t(kept));
    std::sort(order.begin(), order.end());
    CHECK(at::equal(aware.param("a.weight"), original.param("a.weight").index_select(0, at::tensor(order, at::kLong))));
    check_runs(aware, m, {2, 3, 8, 8});
  }
  // A latency budget: the ranking stops once the prediction meets it.
  PruneOptions o;
  o.latency = &table;
  o.latency_aware = true;
  o.target_latency_ms = 3.0;
  Graph g = original;
  PruneResult r = prune(g, o);
  CHECK(r.predicted_ms_after <= 3.0);
  CHECK(r.predicted_ms_after == Approx(predicted_from_shapes(table, original, g, 0.5)));
  check_runs(g, m, {2, 3, 8, 8});
  // A flat table (no layer time changes with width) still reaches the MACs
  // budget: importance per MAC saved decides.
  latency::LatencyTable flat = synthetic_table(original, {0.0, 0.0, 0.0, 0.0});
  PruneOptions f;
  f.latency = &flat;
  f.latency_aware = true;
  f.target_macs = 0.4;
  Graph h = original;
  PruneResult rf = prune(h, f);
  CHECK(rf.macs_after <= 0.4 * double(rf.macs_before));
  CHECK(rf.seconds.analysis > 0);
  CHECK(rf.seconds.removal > 0);
  // Refused: no budget it can choose widths for, no table.
  PruneOptions bad;
  bad.latency_aware = true;
  bad.latency = &table;
  bad.ratio = 0.3;
  Graph k = original;
  CHECK_THROWS_WITH(prune(k, bad), Catch::Contains("the latency-aware ranking chooses widths for a budget"));
  bad.ratio.reset();
  bad.target_macs = 0.5;
  bad.latency = nullptr;
  CHECK_THROWS_WITH(prune(k, bad), Catch::Contains("the latency-aware ranking needs a latency table"));
  bad.latency = &table;
  bad.target_macs = 0.001;
  CHECK_THROWS_WITH(prune(k, bad), Catch::Contains("impossible budget") && Catch::Contains("--max-group-ratio 0.5"));
  bad.target_macs = 0.5;
  for (double cap : {0.0, 1.0}) {
    bad.max_group_ratio = cap;
    CHECK_THROWS_WITH(prune(k, bad), Catch::Contains("--max-group-ratio must be in (0, 0.99]"));
  }
  CHECK(k.param("a.weight").size(0) == 16);  // nothing pruned by the refusals
}

namespace {

// A stand-in for fine-tuning that changes the channels' ranking between
// steps, deterministically: every weight of rank >= 2 gets a pattern that
// depends on the step.
void perturb_weights(Graph& g, int64_t step) {
  for (const std::string& name : g.param_order) {
    const at::Tensor& w = g.param(name);
    if (w.dim() < 2) continue;
    at::Tensor pattern = at::sin(at::arange(w.numel(), at::kFloat).view(w.sizes()) * (0.37 * double(step)));
    g.set_param(name, w + 0.2 * pattern * w.abs().mean());
  }
}

}  // namespace

TEST_CASE("iterative pruning: each step keeps target^(k/N) of the MACs and scores the fine-tuned weights",
          "[pruning][iterative]") {
  at::set_num_threads(1);
  torch::manual_seed(0);
  const torch::jit::Module m = models::build("cnn", 1, 10, 0.5).module;
  const Graph input = imported(m, {1, 1, 28, 28});
  PruneOptions o;
  o.target_macs = 0.4;
  const int64_t steps = 3;

  // The loop `compress prune --iterative-steps` ran before the driver existed:
  // step k asks for target^(k/N) of the input's MACs as a fraction of the current model's.
  Graph reference = input;
  std::vector<int64_t> reference_macs;
  int64_t macs_input = 0, macs_now = 0;
  for (int64_t step = 1; step <= steps; ++step) {
    PruneOptions round = o;
    const double goal = std::pow(*o.target_macs, double(step) / double(steps));
    round.target_macs = step == 1 ? goal : goal * double(macs_input) / double(macs_now);
    const PruneResult r = prune(reference, round);
    if (step == 1) macs_input = r.macs_before;
    macs_now = r.macs_after;
    reference_macs.push_back(r.macs_after);
    perturb_weights(reference, step);
  }

  Graph g = input;
  std::vector<int64_t> seen_steps, macs_at_fine_tune;
  IterativeOptions it;
  it.steps = steps;
  it.fine_tune = [&](Graph& pruned, int64_t step, int64_t n) {
    CHECK(n == steps);
    seen_steps.push_back(step);
    macs_at_fine_tune.push_back(profile_model(pruned).total_macs);
    perturb_weights(pruned, step);
  };
  const IterativeResult r = prune_iteratively(g, o, it);
  CHECK(seen_steps == std::vector<int64_t>{1, 2, 3});
  REQUIRE(r.steps.size() == 3);
  for (size_t k = 0; k < r.steps.size(); ++k) {
    INFO("step " << k + 1);
    CHECK(r.steps[k].step == int64_t(k) + 1);
    CHECK(r.steps[k].pruned);
    CHECK(r.steps[k].macs_after == reference_macs[k]);  // the same as the CLI's loop before
    CHECK(r.steps[k].macs_after == macs_at_fine_tune[k]);  // fine-tuning sees the pruned model
    CHECK(r.steps[k].macs_kept <= std::pow(0.4, double(k + 1) / 3.0) + 1e-9);
    if (k > 0) CHECK(r.steps[k].macs_after < r.steps[k - 1].macs_after);
  }
  CHECK(r.steps[2].to_json()["macs_after"] == r.steps[2].macs_after);
  // The whole run: from the input model to the last step, widths from the input's.
  CHECK(r.result.macs_before == macs_input);
  CHECK(r.result.macs_after == reference_macs.back());
  CHECK(r.result.params_after == profile_model(reference).total_params);
  const GroupAnalysis groups = analyze_groups(input);
  REQUIRE_FALSE(r.result.changes.empty());
  for (const GroupChange& c : r.result.changes) {
    INFO(c.name);
    CHECK(c.before == group(groups, c.name).width);
    CHECK(c.after < c.before);
  }
  // The same weights as the reference (the criterion scored the perturbed ones).
  for (const std::string& name : reference.param_order) {
    INFO(name);
    REQUIRE(g.has_param(name));
    CHECK(g.param(name).equal(reference.param(name)));
  }
  // Scoring the perturbed weights matters: without the fine-tuning stand-in the channels kept differ.
  Graph unperturbed = input;
  IterativeOptions plain;
  plain.steps = steps;
  prune_iteratively(unperturbed, o, plain);
  bool any_differs = false;
  for (const std::string& name : reference.param_order)
    any_differs |= !unperturbed.param(name).sizes().equals(reference.param(name).sizes()) ||
                   !unperturbed.param(name).equal(reference.param(name));
  CHECK(any_differs);
}

TEST_CASE("iterative pruning in one step is prune() then batch-norm re-estimation and fine-tuning", "[pruning][iterative]") {
  at::set_num_threads(1);
  auto m = net({{"c1", conv(3, 8)}, {"b1", bn(8)}, {"c2", conv(8, 8)}, {"b2", bn(8)}, {"c3", conv(8, 4)}},
               R"(
def forward(self, x):
    y = torch.relu(self.b1.forward(self.c1.forward(x)))
    return self.c3.forward(torch.relu(self.b2.forward(self.c2.forward(y))))
)");
  data::TensorDataset ds;
  ds.inputs = at::randn({32, 3, 8, 8});
  ds.labels = at::zeros({32}, at::kLong);
  ds.num_classes = 4;
  PruneOptions o;
  o.target_macs = 0.5;
  Graph expected = imported(m, {1, 3, 8, 8});
  const PruneResult pr = prune(expected, o);
  CHECK(recalibrate_batch_norm(expected, ds, 2) == 2);

  Graph g = imported(m, {1, 3, 8, 8});
  IterativeOptions it;
  it.recalibrate_batches = 2;
  it.recalibration_data = &ds;
  int calls = 0;
  it.fine_tune = [&](Graph& pruned, int64_t step, int64_t n) {
    ++calls;
    CHECK(step == 1);
    CHECK(n == 1);
    CHECK(pruned.param("b2.running_mean").equal(expected.param("b2.running_mean")));  // re-estimated first
  };
  const IterativeResult r = prune_iteratively(g, o, it);
  CHECK(calls == 1);
  CHECK(r.batch_norms_recalibrated == 2);
  CHECK(r.result.macs_after == pr.macs_after);
  CHECK(r.result.to_json()["groups"] == pr.to_json()["groups"]);
  REQUIRE(r.steps.size() == 1);
  CHECK(r.steps[0].macs_after == pr.macs_after);
  // A custom prune step (what a measured latency budget plugs in) replaces prune().
  Graph h = imported(m, {1, 3, 8, 8});
  IterativeOptions custom;
  int custom_calls = 0;
  custom.prune_step = [&](Graph& graph, const PruneOptions& options) {
    ++custom_calls;
    PruneOptions half = options;
    half.target_macs.reset();
    half.ratio = 0.5;
    return prune(graph, half);
  };
  CHECK(prune_iteratively(h, o, custom).result.changes.at(0).after == 4);
  CHECK(custom_calls == 1);
}

TEST_CASE("bad iterative pruning options are refused with one clear reason", "[pruning][iterative][errors]") {
  auto m = net({{"a", conv(3, 8)}, {"out", conv(8, 2)}}, "def forward(self, x):\n    return self.out.forward(self.a.forward(x))\n");
  Graph g = imported(m, {1, 3, 8, 8});
  PruneOptions o;
  o.target_macs = 0.5;
  IterativeOptions it;
  it.steps = 0;
  CHECK_THROWS_WITH(prune_iteratively(g, o, it), Catch::Contains("the number of steps must be at least 1, got 0"));
  it.steps = 2;
  PruneOptions ratio;
  ratio.ratio = 0.5;
  CHECK_THROWS_WITH(prune_iteratively(g, ratio, it), Catch::Contains("splits a MACs budget into steps"));
  PruneOptions aware = o;
  aware.latency_aware = true;
  CHECK_THROWS_WITH(prune_iteratively(g, aware, it), Catch::Contains("splits a MACs budget into steps"));
  it.steps = 1;
  it.recalibrate_batches = 4;
  CHECK_THROWS_WITH(prune_iteratively(g, o, it), Catch::Contains("batch-norm re-estimation needs data"));
  CHECK(g.param("a.weight").size(0) == 8);  // nothing pruned by a refused call
}

namespace {

torch::jit::Module layer_norm(int64_t d) {
  return make_module("__torch__.torch.nn.modules.normalization.LayerNorm",
                     {{"weight", at::rand({d}) + 0.5}, {"bias", at::randn({d}) * 0.1}},
                     "def forward(self, x):\n    return torch.layer_norm(x, [" + std::to_string(d) +
                         "], self.weight, self.bias, 1e-05, True)\n");
}

// The zoo vit's first attention at a quarter width: nn.MultiheadAttention
// as this toolkit exports it (16 features, 4 heads of 4, batch first, the
// fused kernel in eval mode).
torch::jit::Module self_attention() {
  torch::jit::Module vit = models::build("vit", /*seed=*/0, /*num_classes=*/10, /*width=*/0.25).module;
  return vit.attr("encoder").toModule().attr("0").toModule().attr("self_attention").toModule().clone();
}

// A pre-norm transformer over 5 tokens of 6 features: embedding, class
// token, positional embedding, one block of attention (4 heads) and an MLP,
// a final layer norm, the class token classified. `extra` is appended to the
// forward after the embeddings are added (to read the positional embedding twice).
torch::jit::Module tiny_transformer(const std::string& extra = "") {
  torch::manual_seed(0);
  auto m = make_module("__torch__.test.Net", {}, "");
  const std::vector<std::pair<std::string, torch::jit::Module>> children = {
      {"embed", linear(6, 16)}, {"ln1", layer_norm(16)}, {"attn", self_attention()}, {"ln2", layer_norm(16)},
      {"fc1", linear(16, 32)},  {"fc2", linear(32, 16)}, {"ln", layer_norm(16)},          {"head", linear(16, 3)}};
  for (const auto& kv : children) m.register_module(kv.first, kv.second);
  m.register_parameter("cls", at::randn({1, 1, 16}) * 0.1, false);
  m.register_parameter("pos", at::randn({1, 6, 16}) * 0.1, false);
  m.define(R"(
def forward(self, x):
    x = self.embed.forward(x)
    c = self.cls.expand([x.size(0), -1, -1])
    x = torch.cat([c, x], 1) + self.pos
)" + extra + R"(
    x = x + self.attn.forward(self.ln1.forward(x))
    x = x + self.fc2.forward(torch.gelu(self.fc1.forward(self.ln2.forward(x))))
    return self.head.forward(self.ln.forward(x).select(1, 0))
)");
  m.eval();
  return m;
}

}  // namespace

TEST_CASE("a transformer's residual stream is one group: embeddings, layer norms, attention's features, the MLP",
          "[pruning][groups][attention]") {
  at::set_num_threads(1);
  const torch::jit::Module m = tiny_transformer();
  Graph g = imported(m, {2, 5, 6});
  const GroupAnalysis a = analyze_groups(g);
  const Group& stream = group(a, "embed");
  CHECK(stream.width == 16);
  CHECK_FALSE(stream.frozen);
  for (const char* member : {"embed", "cls", "pos", "ln1", "attn", "ln2", "fc1", "fc2", "ln", "head"}) {
    INFO(member);
    CHECK(has_member(stream, member));
  }
  CHECK(a.find("attn") < 0);  // attention writes the stream: its output features are the stream's
  CHECK(a.find("fc2") < 0);
  CHECK_FALSE(group(a, "attn:heads").frozen);
  CHECK(group(a, "fc1").width == 32);

  PruneOptions o;
  o.ratios = {{"embed", 0.5}};
  const PruneResult r = prune(g, o);
  REQUIRE(r.changes.size() == 1);
  CHECK(r.changes[0].after == 8);
  CHECK(g.param("embed.weight").sizes() == at::IntArrayRef({8, 6}));
  CHECK(g.param("cls").sizes() == at::IntArrayRef({1, 1, 8}));
  CHECK(g.param("pos").sizes() == at::IntArrayRef({1, 6, 8}));
  CHECK(g.param("ln1.weight").size(0) == 8);
  CHECK(g.param("ln.bias").size(0) == 8);
  CHECK(g.param("attn.in_proj_weight").sizes() == at::IntArrayRef({48, 8}));  // q, k, v of the 4 heads read 8 features
  CHECK(g.param("attn.out_proj.weight").sizes() == at::IntArrayRef({8, 16}));  // and write 8
  CHECK(g.param("attn.out_proj.bias").size(0) == 8);
  CHECK(g.param("fc1.weight").sizes() == at::IntArrayRef({32, 8}));
  CHECK(g.param("fc2.weight").sizes() == at::IntArrayRef({8, 32}));
  CHECK(g.param("head.weight").sizes() == at::IntArrayRef({3, 8}));
  const auto& attrs = std::get<AttentionAttrs>(g.producer(g.value_named("attn"))->attrs);
  CHECK(attrs.embed_dim == 8);
  CHECK(attrs.num_heads == 4);
  CHECK(attrs.head_size() == 4);  // the heads keep their size
  CHECK_FALSE(attrs.fused);      // the fused kernel needs q, k, v as wide as the input
  CHECK(r.macs_after < r.macs_before);
  CHECK(r.macs_after == profile_model(g).total_macs);
  check_runs(g, m, {2, 5, 6});
  // The pruned attention survives export -> import (embed_dim and head size saved).
  Graph again = import_module(export_module(g));
  const auto& again_attrs = std::get<AttentionAttrs>(again.producer(again.value_named("attn"))->attrs);
  CHECK(again_attrs.embed_dim == 8);
  CHECK(again_attrs.head_size() == 4);

  // A MACs budget: the search's prediction (attention's projections scale
  // with the features and heads kept, QK^T and AV with the heads) is exact.
  Graph h = imported(m, {2, 5, 6});
  PruneOptions budget;
  budget.target_macs = 0.5;
  const PruneResult half = prune(h, budget);
  CHECK(half.macs_after <= 0.5 * half.macs_before);
  CHECK(half.macs_after == profile_model(h).total_macs);
  check_runs(h, m, {2, 5, 6});
}

TEST_CASE("a free parameter read twice freezes the residual stream it is added to, naming it", "[pruning][groups]") {
  const torch::jit::Module m = tiny_transformer("    x = x * torch.sigmoid(self.pos)\n");
  Graph g = imported(m, {2, 5, 6});
  const GroupAnalysis a = analyze_groups(g);
  const Group& stream = group(a, "embed");
  CHECK(stream.frozen);
  CHECK_THAT(stream.frozen_reason, Catch::Contains("parameter pos"));
  CHECK_FALSE(group(a, "fc1").frozen);  // the MLP's hidden width still prunes
}

TEST_CASE("the zoo transformer and vit prune their residual stream: they run, keep their output shape, lose MACs",
          "[pruning][groups][attention]") {
  at::set_num_threads(1);
  for (const char* name : {"vit", "transformer"}) {
    INFO(name);
    torch::manual_seed(0);
    compress::models::ZooModel z = compress::models::build(name, 0);
    z.module.eval();
    Graph g = imported(z.module, {1, 1, 28, 28});
    const GroupAnalysis a = analyze_groups(g);
    const std::string stream_name = std::string(name) == "vit" ? "conv_proj" : "embed";
    const Group& stream = group(a, stream_name);
    INFO(describe_groups(a));
    CHECK_FALSE(stream.frozen);
    CHECK(stream.width == 64);
    CHECK(has_member(stream, "pos_embedding"));
    CHECK(has_member(stream, "head"));
    if (std::string(name) == "vit") CHECK(has_member(stream, "class_token"));
    PruneOptions o;
    o.ratios = {{stream_name, 0.5}};
    Graph by_ratio = g;
    const PruneResult r = prune(by_ratio, o);
    REQUIRE(r.changes.size() == 1);
    CHECK(r.changes[0].after == 32);
    CHECK(r.macs_after < 0.6 * r.macs_before);  // the stream's width is in every layer
    check_runs(by_ratio, z.module, {2, 1, 28, 28});
    PruneOptions budget;
    budget.target_macs = 0.5;
    const PruneResult half = prune(g, budget);
    CHECK(half.macs_after <= 0.5 * half.macs_before);
    CHECK(half.macs_after == profile_model(g).total_macs);
    bool stream_pruned = false;
    for (const GroupChange& c : half.changes) stream_pruned |= c.name == stream_name;
    CHECK(stream_pruned);
    check_runs(g, z.module, {2, 1, 28, 28});
  }
}
