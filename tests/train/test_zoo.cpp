// The baseline zoo: each model runs on 28x28 inputs, is seeded, carries
// state_dict-style names and torch.nn-like leaf modules, and saves/loads.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>

#include "compress/models/reinit.h"
#include "compress/models/zoo.h"
#include "compress/error.h"
#include "temp_dir.h"

using namespace compress::models;

TEST_CASE("every zoo model runs, is seeded, and round-trips through save/load", "[zoo]") {
  const compress::testing::TempDir tmp("zoo");
  const std::filesystem::path& dir = tmp.path();
  at::Tensor x = at::rand({2, 1, 28, 28});
  for (const auto& name : zoo_names()) {
    INFO(name);
    ZooModel a = build(name, 7), b = build(name, 7), c = build(name, 8);
    CHECK(a.macs > 0);
    CHECK(count_parameters(a.module) > 1000);
    auto pa = a.module.named_parameters(), pb = b.module.named_parameters(), pc = c.module.named_parameters();
    bool all_equal = true, any_differs = false;
    auto ib = pb.begin(), ic = pc.begin();
    for (auto ia = pa.begin(); ia != pa.end(); ++ia, ++ib, ++ic) {
      all_equal = all_equal && at::equal((*ia).value, (*ib).value);
      any_differs = any_differs || !at::equal((*ia).value, (*ic).value);
    }
    CHECK(all_equal);
    CHECK(any_differs);

    a.module.eval();
    at::Tensor y = a.module.forward({x}).toTensor();
    REQUIRE(y.sizes() == at::IntArrayRef({2, 10}));
    CHECK(at::equal(y, a.module.forward({x}).toTensor()));  // eval mode: no dropout, fixed BN

    std::string path = (dir / (name + ".pt")).string();
    a.module.save(path);
    auto loaded = torch::jit::load(path);
    loaded.eval();
    CHECK(at::equal(y, loaded.forward({x}).toTensor()));

    // Training mode changes BN to batch statistics: outputs differ.
    a.module.train();
    at::NoGradGuard ng;
    CHECK_FALSE(at::allclose(y, a.module.forward({x}).toTensor()));
  }
}

TEST_CASE("zoo leaves look like torch.nn modules with state_dict names", "[zoo]") {
  auto cnn = build("cnn").module;
  bool has_conv = false, has_bn = false, has_linear = false;
  for (const auto& m : cnn.named_modules()) {
    const std::string cls = m.value.type()->name()->qualifiedName();
    if (m.name == "features.0") has_conv = cls.find("torch.nn.modules.conv") != std::string::npos && cls.find("Conv2d") != std::string::npos;
    if (m.name == "features.1") has_bn = cls.find("BatchNorm2d") != std::string::npos;
    if (m.name == "classifier.2") has_linear = cls.find("Linear") != std::string::npos;
  }
  CHECK(has_conv);
  CHECK(has_bn);
  CHECK(has_linear);
  std::set<std::string> names;
  for (const auto& p : cnn.named_parameters()) names.insert(p.name);
  CHECK(names.count("features.0.weight") == 1);
  CHECK(names.count("features.1.bias") == 1);
  std::set<std::string> buffers;
  for (const auto& p : cnn.named_buffers()) buffers.insert(p.name);
  CHECK(buffers.count("features.1.running_mean") == 1);

  std::set<std::string> resnet;
  for (const auto& p : build("resnet").module.named_parameters()) resnet.insert(p.name);
  CHECK(resnet.count("layer1.0.conv1.weight") == 1);
  CHECK(resnet.count("layer2.0.downsample.0.weight") == 1);

  std::set<std::string> vit;
  for (const auto& p : build("vit").module.named_parameters()) vit.insert(p.name);
  CHECK(vit.count("encoder.0.self_attention.in_proj_weight") == 1);
  CHECK(vit.count("encoder.0.self_attention.out_proj.weight") == 1);
  CHECK(vit.count("class_token") == 1);

  CHECK_THROWS_AS(build("alexnet"), compress::Error);
}

TEST_CASE("the IR round trip of each zoo model is exact in eval and train mode", "[zoo][ir]") {
  at::Tensor x = at::rand({4, 1, 28, 28});
  for (const auto& name : zoo_names()) {
    INFO(name);
    ZooModel direct = build_direct(name, 3), exported = build(name, 3);
    CHECK(direct.macs == exported.macs);
    CHECK(count_parameters(direct.module) == count_parameters(exported.module));
    direct.module.eval();
    exported.module.eval();
    CHECK(at::equal(direct.module.forward({x}).toTensor(), exported.module.forward({x}).toTensor()));
    direct.module.train();
    exported.module.train();
    // Same seed for dropout on both sides: training-mode outputs match too.
    at::manual_seed(11);
    at::Tensor a = direct.module.forward({x}).toTensor();
    at::manual_seed(11);
    at::Tensor b = exported.module.forward({x}).toTensor();
    CHECK(at::equal(a, b));
  }
}

TEST_CASE("a width multiplier scales every zoo model and width 1 is the default model", "[zoo]") {
  at::Tensor x = at::rand({2, 1, 28, 28});
  for (const auto& name : zoo_names()) {
    INFO(name);
    ZooModel base = build(name, 5), one = build(name, 5, 10, 1.0), half = build(name, 5, 10, 0.5);
    auto pb = base.module.named_parameters(), po = one.module.named_parameters();
    bool same = true;
    for (auto ib = pb.begin(), io = po.begin(); ib != pb.end(); ++ib, ++io) same = same && at::equal((*ib).value, (*io).value);
    CHECK(same);
    CHECK(one.macs == base.macs);
    // Half the channels: roughly a quarter of the MACs of layers between two scaled widths.
    CHECK(half.macs < base.macs / 2);
    CHECK(count_parameters(half.module) < count_parameters(base.module) / 2);
    half.module.eval();
    CHECK(half.module.forward({x}).toTensor().sizes() == at::IntArrayRef({2, 10}));
  }
  ZooModel cnn = build("cnn", 0, 10, 0.5);
  for (const auto& p : cnn.module.named_parameters()) {
    if (p.name == "features.0.weight") CHECK(p.value.size(0) == 16);
    if (p.name == "classifier.2.weight") CHECK(p.value.sizes() == at::IntArrayRef({64, 64 * 9}));
  }
  CHECK_THROWS_AS(build("cnn", 0, 10, 0.0), compress::Error);
  CHECK_THROWS_AS(build("cnn", 0, 10, -1.0), compress::Error);
}

TEST_CASE("reinitialize gives a model fresh seeded weights with the zoo's rules and refuses unknown parameters", "[zoo]") {
  torch::jit::Module m = build("cnn", 3, 10, 0.5).module;
  // Trained-looking state: every tensor shifted, batch norm statistics moved.
  for (const auto& p : m.named_parameters()) p.value.detach().add_(0.3);
  for (const auto& b : m.named_buffers()) {
    if (b.value.is_floating_point()) b.value.add_(0.7);
    else b.value.add_(5);
  }
  auto params = [](const torch::jit::Module& module) {
    std::map<std::string, at::Tensor> out;
    for (const auto& p : module.named_parameters()) out[p.name] = p.value.detach().clone();
    return out;
  };
  const std::map<std::string, at::Tensor> before = params(m);
  torch::jit::Module again = m.clone();
  reinitialize(m, 11);
  reinitialize(again, 11);
  const std::map<std::string, at::Tensor> after = params(m), repeat = params(again);
  REQUIRE(after.size() == before.size());
  for (const auto& [name, value] : after) {
    INFO(name);
    CHECK(value.sizes() == before.at(name).sizes());
    CHECK_FALSE(at::equal(value, before.at(name)));
    CHECK(at::equal(value, repeat.at(name)));  // seeded
  }
  // The zoo's rules: batch norm scale 1 / shift 0 / statistics reset; the
  // first convolution (no bias) Kaiming-normal over fan_out (16 * 3 * 3).
  torch::jit::Module bn = m.attr("features").toModule().attr("1").toModule();
  CHECK(at::equal(bn.attr("weight").toTensor(), at::ones({16})));
  CHECK(at::equal(bn.attr("bias").toTensor(), at::zeros({16})));
  CHECK(at::equal(bn.attr("running_mean").toTensor(), at::zeros({16})));
  CHECK(at::equal(bn.attr("running_var").toTensor(), at::ones({16})));
  CHECK(bn.attr("num_batches_tracked").toTensor().item<int64_t>() == 0);
  torch::jit::Module conv = m.attr("features").toModule().attr("0").toModule();
  CHECK(conv.attr("weight").toTensor().std().item<double>() == Approx(std::sqrt(2.0 / (16 * 9))).epsilon(0.25));
  // A different seed, different weights; the model still runs.
  torch::jit::Module other = build("cnn", 3, 10, 0.5).module;
  reinitialize(other, 12);
  CHECK_FALSE(at::equal(other.attr("features").toModule().attr("0").toModule().attr("weight").toTensor(),
                        conv.attr("weight").toTensor()));
  m.eval();
  CHECK(m.forward({at::rand({2, 1, 28, 28})}).toTensor().sizes() == at::IntArrayRef({2, 10}));

  // No rule for recurrent cells: refused, naming the parameter, nothing changed.
  torch::jit::Module lstm = build("lstm", 1).module;
  at::Tensor first = (*lstm.named_parameters().begin()).value.clone();
  CHECK_THROWS_WITH(reinitialize(lstm, 1), Catch::Contains("cannot re-initialise parameter '") && Catch::Contains("weight_ih_l0"));
  CHECK(at::equal((*lstm.named_parameters().begin()).value, first));
}
