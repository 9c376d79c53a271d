// The Distiller on tiny zoo CNNs and a synthetic 28x28 problem: the losses
// go down, the teacher is left alone, adapters have the right shapes, the
// teacher cache changes nothing but speed, and bad setups are refused.
#include <catch2/catch.hpp>

#include "compress/distillation/distill.h"
#include "compress/error.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"
#include "compress/train/evaluate.h"
#include "distill_test_util.h"
#include "train/cli_run.h"

using namespace compress;
using namespace compress::distillation;

namespace {

const std::vector<int64_t> kSample = {1, 28, 28};


// A cnn at a quarter of the width, trained for two epochs on the quadrants.
torch::jit::Module trained_teacher(const data::TensorDataset& ds) {
  torch::jit::Module m = models::build("cnn", 11, 10, 0.25).module;
  train::Trainer t(m, distill_test::quick_config(2));
  t.fit(ds);
  m.eval();
  return m;
}

Graph student_graph(double width, int64_t classes = 10) {
  return import_module(models::build("cnn", 12, classes, width).module);
}

std::vector<std::pair<std::string, at::Tensor>> state_of(const torch::jit::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters(true)) out.push_back({p.name, p.value.clone()});
  for (const auto& b : m.named_buffers(true)) out.push_back({b.name, b.value.clone()});
  return out;
}

bool same_state(const std::vector<std::pair<std::string, at::Tensor>>& a,
                const std::vector<std::pair<std::string, at::Tensor>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !at::equal(a[i].second, b[i].second)) return false;
  }
  return true;
}

ErrorKind error_kind(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("no error raised");
  return ErrorKind::Failure;
}

}  // namespace

TEST_CASE("distillation losses decrease on a tiny model in a few epochs", "[distill]") {
  const data::TensorDataset ds = cli_test::quadrant_set(256, 1);
  torch::jit::Module teacher = trained_teacher(ds);
  const auto before = state_of(teacher);
  DistillOptions o;
  o.losses = {Loss::KD, Loss::FitNet, Loss::Attention};
  o.features = {{"features.6:relu", "features.6:relu"}, {"features.10:relu", "features.10:relu"}};
  Distiller d(teacher, student_graph(0.125), o, kSample);
  DistillResult r = d.fit(ds, distill_test::quick_config(4));
  REQUIRE(r.terms.size() == 4);
  const EpochTerms &first = r.terms.front(), &last = r.terms.back();
  CHECK(last.total < first.total);
  CHECK(last.kd < first.kd);
  CHECK(last.hint < first.hint);
  CHECK(last.attention < first.attention);
  CHECK(last.cross_entropy < first.cross_entropy);
  CHECK(same_state(before, state_of(teacher)));
  // The student learned the task (chance is 1/4).
  torch::jit::Module student = d.student_module();
  CHECK(train::evaluate(student, ds).top1 > 0.6);
}

TEST_CASE("the teacher's parameters and statistics are unchanged by training", "[distill]") {
  const data::TensorDataset ds = cli_test::quadrant_set(128, 2);
  torch::jit::Module teacher = trained_teacher(ds);
  const auto before = state_of(teacher);
  DistillOptions o;
  o.cache = TeacherCache::Off;  // the teacher runs at every step, on the very module given
  Distiller d(teacher, student_graph(0.125), o, kSample);
  d.fit(ds, distill_test::quick_config(2));
  CHECK(same_state(before, state_of(teacher)));
  CHECK_FALSE(teacher.is_training());
  for (const auto& p : teacher.parameters(true)) CHECK_FALSE(p.requires_grad());
}

TEST_CASE("hint adapters map student channels to teacher channels and are not saved", "[distill]") {
  const data::TensorDataset ds = cli_test::quadrant_set(64, 3);
  torch::jit::Module teacher = models::build("cnn", 4).module;
  DistillOptions o;
  o.losses = {Loss::KD, Loss::FitNet};
  o.features = {{"features.10:relu", "features.10:relu"}, {"classifier.3:relu", "classifier.3:relu"}};
  Distiller d(teacher, student_graph(0.5), o, kSample);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"distill_adapter_0_weight", {128, 64, 1, 1}},  // 1x1 conv on [N, 64, 7, 7]
      {"distill_adapter_0_bias", {128}},
      {"distill_adapter_1_weight", {128, 64}},        // linear on [N, 64]
      {"distill_adapter_1_bias", {128}}};
  CHECK(d.adapter_shapes() == want);

  // Equal widths: the adapter starts as the identity.
  Distiller same(teacher, student_graph(1.0), o, kSample);
  CHECK(same.adapter_shapes()[0].second == std::vector<int64_t>{128, 128, 1, 1});

  d.fit(ds, distill_test::quick_config(1));
  torch::jit::Module s = d.student_module();
  for (const auto& p : s.named_parameters(true)) CHECK(p.name.find("distill_adapter") == std::string::npos);
  c10::IValue y = s.forward({at::rand({2, 1, 28, 28})});
  REQUIRE(y.isTensor());  // no taps left on the saved student
  CHECK(y.toTensor().sizes() == at::IntArrayRef({2, 10}));
}

TEST_CASE("cached teacher outputs train the student exactly as running the teacher", "[distill]") {
  const data::TensorDataset ds = cli_test::quadrant_set(128, 5);
  torch::jit::Module teacher = trained_teacher(ds);
  DistillOptions o;
  o.losses = {Loss::KD, Loss::Attention};
  o.features = {{"features.10:relu", "features.10:relu"}};
  o.cache = TeacherCache::On;
  Distiller cached(teacher, student_graph(0.125), o, kSample);
  DistillResult a = cached.fit(ds, distill_test::quick_config(2));
  o.cache = TeacherCache::Off;
  Distiller live(teacher, student_graph(0.125), o, kSample);
  DistillResult b = live.fit(ds, distill_test::quick_config(2));
  CHECK(a.teacher_cached);
  CHECK_FALSE(b.teacher_cached);
  REQUIRE(a.terms.size() == 2);
  CHECK(a.terms.back().kd == Approx(b.terms.back().kd).epsilon(1e-4));
  CHECK(a.terms.back().attention == Approx(b.terms.back().attention).epsilon(1e-4));
  auto pa = cached.student_module().named_parameters(true), pb = live.student_module().named_parameters(true);
  for (auto ia = pa.begin(), ib = pb.begin(); ia != pa.end(); ++ia, ++ib) {
    INFO((*ia).name);
    CHECK(at::allclose((*ia).value, (*ib).value, 1e-4, 1e-5));
  }
  // Augmented batches differ from what a cache could hold.
  train::TrainConfig flips = distill_test::quick_config(1);
  flips.augment.horizontal_flip = true;
  o.cache = TeacherCache::On;
  Distiller refused(teacher, student_graph(0.125), o, kSample);
  CHECK(error_kind([&] { refused.fit(ds, flips); }) == ErrorKind::BadInput);
}

TEST_CASE("bad distillation setups are refused before training", "[distill]") {
  torch::jit::Module teacher = models::build("cnn", 4, 10, 0.25).module;
  auto refuse = [&](DistillOptions o, Graph student, const std::string& text) {
    try {
      Distiller d(teacher, std::move(student), o, kSample);
      FAIL("accepted: " << text);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(e.kind() == ErrorKind::BadInput);
      CHECK_THAT(e.what(), Catch::Contains(text));
    }
  };
  DistillOptions kd;
  refuse(kd, student_graph(0.25, 5), "outputs differ in shape");
  DistillOptions bad_t = kd;
  bad_t.temperature = 0;
  refuse(bad_t, student_graph(0.25), "temperature");
  DistillOptions bad_alpha = kd;
  bad_alpha.alpha = 1.5;
  refuse(bad_alpha, student_graph(0.25), "alpha");
  DistillOptions fitnet;
  fitnet.losses = {Loss::FitNet};
  refuse(fitnet, student_graph(0.25), "--feature");  // a feature loss without pairs
  fitnet.features = {{"features.10:rleu", "features.10:relu"}};
  refuse(fitnet, student_graph(0.25), "did you mean 'features.10:relu'");
  fitnet.features = {{"features.10:relu", "features.6:relu"}};  // 7x7 against 14x14
  refuse(fitnet, student_graph(0.25), "same rank");
  DistillOptions at;
  at.losses = {Loss::Attention};
  at.features = {{"classifier.3:relu", "classifier.3:relu"}};  // no spatial map
  refuse(at, student_graph(0.25), "attention transfer needs");
}
