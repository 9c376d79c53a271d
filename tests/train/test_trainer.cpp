// The trainer: it learns, it is deterministic, and a resumed run ends with
// exactly the weights of an uninterrupted one.
#include <catch2/catch.hpp>

#include <filesystem>

#include "compress/error.h"
#include "compress/train/trainer.h"
#include "temp_dir.h"
#include "tiny.h"

using namespace compress::train;
namespace fs = std::filesystem;

namespace {

TrainConfig small_config(uint64_t seed) { return tiny::train_config(seed); }

void require_same_state(const torch::jit::Module& a, const torch::jit::Module& b) {
  auto pa = named_parameters(a), pb = named_parameters(b);
  auto ba = named_buffers(a), bb = named_buffers(b);
  pa.insert(pa.end(), ba.begin(), ba.end());
  pb.insert(pb.end(), bb.begin(), bb.end());
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].name);
    REQUIRE(pa[i].name == pb[i].name);
    REQUIRE(at::equal(pa[i].value, pb[i].value));
  }
}

}  // namespace

TEST_CASE("a short run lowers the loss on a synthetic problem", "[trainer]") {
  auto data = tiny::blobs(256, 1);
  auto m = tiny::make_model(0);
  auto before = evaluate(m, data);
  Trainer t(m, small_config(0));
  auto r = t.fit(data);
  REQUIRE(r.history.size() == 4);
  auto after = evaluate(m, data);
  CHECK(r.history.back().train_loss < 0.7 * r.history.front().train_loss);
  CHECK(after.loss < 0.5 * before.loss);
  CHECK(after.top1 > 0.9);
  CHECK(r.steps == 4 * 8);
}

TEST_CASE("same seed gives the same weights, another seed does not", "[trainer][determinism]") {
  auto data = tiny::blobs(200, 2);
  auto m1 = tiny::make_model(3), m2 = tiny::make_model(3), m3 = tiny::make_model(3);
  Trainer(m1, small_config(9)).fit(data);
  Trainer(m2, small_config(9)).fit(data);
  require_same_state(m1, m2);
  Trainer(m3, small_config(10)).fit(data);
  CHECK_FALSE(at::equal(named_parameters(m1)[0].value, named_parameters(m3)[0].value));
}

TEST_CASE("resuming from a checkpoint gives the uninterrupted run's weights", "[trainer][checkpoint]") {
  const compress::testing::TempDir tmp("train");
  auto data = tiny::blobs(200, 4);  // 6 full batches of 32 per epoch (drop_last)
  for (const char* kind : {"sgd", "adamw"}) {
    INFO(kind);
    auto cfg = small_config(5);
    cfg.optimizer.kind = kind;
    if (std::string(kind) == "adamw") {
      cfg.optimizer.lr = 0.01;
      cfg.optimizer.nesterov = false;
    }
    auto whole = tiny::make_model(1);
    Trainer(whole, cfg).fit(data);

    for (int64_t stop_at : {8, 12}) {  // mid-epoch (epoch 2, batch 2) and at an epoch boundary
      INFO("interrupted after step " << stop_at);
      auto ckpt = tmp.file(std::string("resume_") + kind + "_" + std::to_string(stop_at) + ".ckpt");
      auto first = tiny::make_model(1);
      auto c1 = cfg;
      c1.checkpoint_path = ckpt;
      c1.stop_after_steps = stop_at;
      auto r1 = Trainer(first, c1).fit(data);
      REQUIRE(r1.stopped_early);
      REQUIRE(r1.steps == stop_at);
      REQUIRE(fs::exists(ckpt));

      auto second = tiny::make_model(1);  // a fresh process would rebuild the model like this
      auto c2 = cfg;
      c2.checkpoint_path = ckpt;
      c2.resume = true;
      auto r2 = Trainer(second, c2).fit(data);
      REQUIRE_FALSE(r2.stopped_early);
      REQUIRE(r2.steps == 4 * 6);
      require_same_state(whole, second);
    }
  }
}

TEST_CASE("a checkpoint of another run is refused", "[trainer][checkpoint]") {
  auto data = tiny::blobs(64, 4);
  const compress::testing::TempDir tmp("train");
  auto ckpt = tmp.file("other.ckpt");
  auto cfg = small_config(5);
  cfg.epochs = 1;
  cfg.checkpoint_path = ckpt;
  cfg.fingerprint = "run A";
  auto m = tiny::make_model(1);
  Trainer(m, cfg).fit(data);
  REQUIRE(fs::exists(ckpt));
  cfg.fingerprint = "run B";
  cfg.resume = true;
  auto m2 = tiny::make_model(1);
  Trainer t(m2, cfg);
  try {
    t.fit(data);
    FAIL("foreign checkpoint accepted");
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    CHECK_THAT(std::string(e.what()), Catch::Contains(ckpt) && Catch::Contains("another run"));
  }
  // No temporary files are left next to the checkpoint.
  for (const auto& f : fs::directory_iterator(fs::path(ckpt).parent_path()))
    CHECK(f.path().filename().string().find(".tmp") == std::string::npos);
}

namespace {
struct Recorder : Callback {
  int losses = 0, backwards = 0, steps = 0, epochs = 0;
  bool grads_seen = true;
  void on_loss(StepContext& c) override {
    ++losses;
    // A penalty added here must reach the gradients (how BN-L1 hooks in).
    c.loss = c.loss + 0.0 * c.logits.sum();
  }
  void after_backward(StepContext& c) override {
    ++backwards;
    for (const auto& p : c.optimizer->params()) grads_seen = grads_seen && p.value.grad().defined();
  }
  void after_step(StepContext&) override { ++steps; }
  void on_epoch_end(const EpochStats&) override { ++epochs; }
};
}  // namespace

TEST_CASE("callbacks run around backward and step", "[trainer]") {
  auto data = tiny::blobs(128, 6);
  auto m = tiny::make_model(2);
  auto cfg = small_config(1);
  cfg.epochs = 2;
  Trainer t(m, cfg);
  auto rec = std::make_shared<Recorder>();
  t.add_callback(rec);
  auto r = t.fit(data);
  CHECK(rec->losses == r.steps);
  CHECK(rec->backwards == r.steps);
  CHECK(rec->steps == r.steps);
  CHECK(rec->epochs == 2);
  CHECK(rec->grads_seen);
}

TEST_CASE("a validation set is evaluated each epoch", "[trainer]") {
  auto data = tiny::blobs(256, 7);
  auto [tr, va] = compress::data::train_val_split(data, 0.25, 0);
  auto m = tiny::make_model(2);
  auto cfg = small_config(1);
  cfg.epochs = 2;
  auto r = Trainer(m, cfg).fit(tr, &va);
  REQUIRE(r.history.size() == 2);
  REQUIRE(r.history[1].val.has_value());
  CHECK(r.history[1].val->count == 64);
  CHECK(r.history[1].val->top1 > 0.5);
}

TEST_CASE("parameter groups: a frozen group stays put, a group's own learning rate applies", "[trainer][groups]") {
  auto data = tiny::blobs(128, 8);
  auto m = tiny::make_model(4);
  auto cfg = small_config(2);
  cfg.epochs = 1;
  cfg.optimizer.groups = {ParamGroup{"first layer", {"w1", "b1"}, true, std::nullopt, std::nullopt}};
  at::Tensor w1 = m.attr("w1").toTensor().clone(), w2 = m.attr("w2").toTensor().clone();
  Trainer(m, cfg).fit(data);
  CHECK(at::equal(m.attr("w1").toTensor(), w1));
  CHECK_FALSE(m.attr("w1").toTensor().requires_grad());
  CHECK_FALSE(at::equal(m.attr("w2").toTensor(), w2));

  // One plain SGD step: the group's parameter moves by its own rate.
  at::Tensor a = at::ones({4}), b = at::ones({4});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  OptimizerConfig oc;
  oc.lr = 0.1;
  oc.momentum = 0;
  oc.groups = {ParamGroup{"scales", {"*.scale"}, false, 0.01, std::nullopt}};
  Optimizer opt({{"layer.weight", a}, {"layer.scale", b}}, oc);
  (a.sum() + b.sum()).backward();
  opt.step(0.1);
  CHECK(at::allclose(a, at::full({4}, 0.9)));
  CHECK(at::allclose(b, at::full({4}, 0.99)));

  oc.groups = {ParamGroup{"typo", {"*.scael"}, false, std::nullopt, std::nullopt}};
  CHECK_THROWS_WITH(Optimizer({{"layer.scale", b}}, oc), Catch::Contains("group 'typo' matches no parameter"));
  cfg.optimizer.groups = {ParamGroup{"all", {"*"}, true, std::nullopt, std::nullopt}};
  CHECK_THROWS_WITH(Trainer(tiny::make_model(4), cfg), Catch::Contains("every parameter of the model is frozen"));
}

TEST_CASE("group patterns: exact names and '*' globs", "[trainer][groups]") {
  CHECK(matches_pattern("fc.weight", "fc.weight"));
  CHECK_FALSE(matches_pattern("fc.weight", "fc.weight2"));
  CHECK(matches_pattern("layer1.*", "layer1.0.conv1.weight"));
  CHECK_FALSE(matches_pattern("layer1.*", "layer10.0.conv1.weight"));
  CHECK(matches_pattern("*.bn*.weight", "layer1.0.bn2.weight"));
  CHECK(matches_pattern("*", "anything"));
  CHECK_FALSE(matches_pattern("*.scale", "scale"));
}

TEST_CASE("a model returning (logits, features) trains with a loss on its features", "[trainer][features]") {
  auto data = tiny::blobs(128, 9);
  auto m = tiny::make_model(5);
  // The same model, also returning its hidden layer (what an export with taps gives).
  m.define(R"(
def with_features(self, x: Tensor) -> Tuple[Tensor, Tensor]:
    h = torch.relu(torch.linear(x, self.w1, self.b1))
    return (torch.linear(h, self.w2, self.b2), h)
)");
  torch::jit::Module wrapper("__torch__.Wrapper");
  wrapper.register_attribute("training", c10::BoolType::get(), true);
  wrapper.register_module("inner", m);
  wrapper.define("def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:\n    return self.inner.with_features(x)\n");
  auto cfg = small_config(3);
  cfg.epochs = 2;
  Trainer t(wrapper, cfg);
  int64_t seen = 0;
  double first_penalty = -1, last_penalty = -1;
  t.set_loss([&](StepContext& ctx) {
    REQUIRE(ctx.features.size() == 1);
    CHECK(ctx.features[0].size(1) == 16);
    at::Tensor penalty = ctx.features[0].pow(2).mean();
    if (first_penalty < 0) first_penalty = penalty.item<double>();
    last_penalty = penalty.item<double>();
    ++seen;
    return at::cross_entropy_loss(ctx.logits, ctx.labels) + 1.0 * penalty;
  });
  auto r = t.fit(data);
  CHECK(seen == r.steps);
  CHECK(last_penalty < first_penalty);
  // Evaluation reads the logits from the tuple.
  CHECK(evaluate(wrapper, data).top1 > 0.5);
}
