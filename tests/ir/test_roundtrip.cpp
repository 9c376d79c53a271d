// Import then export must give bit-identical outputs (eval mode) on traced
// torchvision models, and the exported module must behave as a module:
// train()/eval(), state_dict names, save and load.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include <ATen/Parallel.h>

#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "test_util.h"

using namespace compress;
using compress::testing::fixture;
using compress::testing::load_fixture_tensor;

namespace {

std::map<std::string, at::Tensor> state_of(const torch::jit::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.name] = p.value;
  for (const auto& b : m.named_buffers(true)) out[b.name] = b.value;
  return out;
}

void check_round_trip(const std::string& name) {
  INFO("model " << name);
  // One thread: some of LibTorch's threaded kernels (large linear layers) are
  // not bit-reproducible from one call to the next, even for the same module.
  at::set_num_threads(1);
  torch::jit::Module original = torch::jit::load(fixture(name + ".pt"));
  original.eval();
  at::Tensor x = load_fixture_tensor(name + ".input.pt");
  at::Tensor expected = load_fixture_tensor(name + ".output.pt");

  Graph g = import_module(original);
  torch::jit::Module exported = export_module(g);
  exported.eval();

  torch::NoGradGuard no_grad;
  at::Tensor ours = exported.forward({x}).toTensor();
  at::Tensor theirs = original.forward({x}).toTensor();
  REQUIRE(ours.sizes() == theirs.sizes());
  CHECK(compress::testing::max_abs_diff(ours, theirs) == 0.0);
  // The fixture's output was computed by Python on the same weights.
  CHECK(compress::testing::max_abs_diff(ours, expected) == 0.0);

  // Same parameters and buffers under the same state_dict names.
  auto a = state_of(original), b = state_of(exported);
  REQUIRE(a.size() == b.size());
  for (const auto& kv : a) {
    INFO("tensor " << kv.first);
    REQUIRE(b.count(kv.first) == 1);
    CHECK(at::equal(kv.second, b[kv.first]));
  }

  // Saves, loads back and still computes the same thing.
  std::string path = fixture(name + ".roundtrip.pt");
  exported.save(path);
  torch::jit::Module reloaded = torch::jit::load(path);
  CHECK(compress::testing::max_abs_diff(reloaded.forward({x}).toTensor(), theirs) == 0.0);
  // Importing our own export again is exact too.
  torch::jit::Module twice = export_module(import_module(reloaded));
  CHECK(compress::testing::max_abs_diff(twice.forward({x}).toTensor(), theirs) == 0.0);
  std::filesystem::remove(path);
}

}  // namespace

TEST_CASE("round trip is exact: resnet18", "[ir][roundtrip]") { check_round_trip("resnet18"); }
TEST_CASE("round trip is exact: mobilenet_v2", "[ir][roundtrip]") { check_round_trip("mobilenet_v2"); }
TEST_CASE("round trip is exact: mobilenet_v3_small", "[ir][roundtrip]") { check_round_trip("mobilenet_v3_small"); }
TEST_CASE("round trip is exact: efficientnet_b0", "[ir][roundtrip]") { check_round_trip("efficientnet_b0"); }
TEST_CASE("round trip is exact: vit (fused attention)", "[ir][roundtrip]") { check_round_trip("vit_small"); }
TEST_CASE("round trip is exact: vit (decomposed attention)", "[ir][roundtrip]") { check_round_trip("vit_small_grad"); }
TEST_CASE("round trip is exact: straight-line scripted model", "[ir][roundtrip]") {
  check_round_trip("straight_line_scripted");
}

TEST_CASE("round trip is exact: embedding, conv1d, batchnorm1d, layernorm, transformer layer", "[ir][roundtrip]") {
  check_round_trip("text_model");
  Graph g = import_module(torch::jit::load(fixture("text_model.pt")));
  std::set<std::string> ops;
  for (const auto& n : g.nodes()) ops.insert(n.op_name());
  for (const char* leaf : {"nn.Embedding", "nn.Conv1d", "nn.BatchNorm1d", "nn.LayerNorm", "nn.Linear"}) {
    INFO(leaf);
    CHECK(ops.count(leaf) == 1);
  }
  const auto& emb = std::get<EmbeddingAttrs>(g.node_list()[0]->attrs);
  CHECK(emb.num_embeddings == 100);
  CHECK(emb.padding_idx == std::optional<int64_t>(0));
}

TEST_CASE("export gives modules with the same class name, slots and forward one class", "[ir][roundtrip]") {
  torch::jit::Module original = torch::jit::load(fixture("resnet18.pt"));
  torch::jit::Module exported = export_module(import_module(original));
  auto type_of = [&](const std::string& path) {
    torch::jit::Module m = exported;
    for (size_t from = 0; from <= path.size();) {
      const size_t dot = std::min(path.find('.', from), path.size());
      m = m.attr(path.substr(from, dot - from)).toModule();
      from = dot + 1;
    }
    return m.type();
  };
  // Two 3x3 stride-1 convolutions without bias, two batch norms of one
  // width, two blocks without a downsample branch: one class each.
  CHECK(type_of("layer1.0.conv1") == type_of("layer1.0.conv2"));
  CHECK(type_of("layer1.0.conv1") == type_of("layer1.1.conv2"));
  CHECK(type_of("layer1.0.bn1") == type_of("layer1.1.bn2"));
  CHECK(type_of("layer1.0") == type_of("layer1.1"));
  // A 7x7 stride-2 convolution has another forward; a block with a
  // downsample branch other slots.
  CHECK(type_of("conv1") != type_of("layer1.0.conv1"));
  CHECK(type_of("layer2.0") != type_of("layer2.1"));
  // Sharing keeps the class names users see, and each module its own state.
  CHECK(type_of("layer1.0")->name()->name() == "BasicBlock");
  CHECK(type_of("layer1.0.conv1")->name()->name() == "Conv2d");
  std::set<c10::ClassTypePtr> classes;
  int64_t modules = 0;
  for (const auto& m : exported.modules()) {
    classes.insert(m.type());
    ++modules;
  }
  INFO(classes.size() << " classes for " << modules << " modules");
  CHECK(classes.size() * 3 < size_t(modules));
  exported.attr("layer1").toModule().attr("0").toModule().train();
  CHECK(exported.attr("layer1").toModule().attr("0").toModule().is_training());
  CHECK_FALSE(exported.attr("layer1").toModule().attr("1").toModule().is_training());
}
