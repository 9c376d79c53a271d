// The baseline zoo: each model runs on 28x28 inputs, is seeded, carries
// state_dict-style names and torch.nn-like leaf modules, and saves/loads.
#include <catch2/catch.hpp>

#include <filesystem>

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
