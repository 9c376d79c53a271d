// PDD on a tiny CNN: the gates close under the MACs budget while training,
// the closed channels are removed, and the smaller student runs.
#include <catch2/catch.hpp>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "compress/analysis/profile.h"
#include "compress/distillation/pdd.h"
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"
#include "compress/train/evaluate.h"
#include "distill_test_util.h"
#include "train/cli_run.h"

using namespace compress;
using namespace compress::distillation;
namespace fs = std::filesystem;

TEST_CASE("PDD gates close under the MACs budget and the pruned student is smaller and runs", "[distill][pdd]") {
  const data::TensorDataset ds = cli_test::quadrant_set(256, 7);
  torch::jit::Module teacher = models::build("cnn", 21, 10, 0.5).module;
  {
    train::Trainer t(teacher, distill_test::quick_config(2));
    t.fit(ds);
    teacher.eval();
  }
  Graph student = import_module(models::build("cnn", 22, 10, 0.25).module);
  student.set_example_inputs({InputSpec{{1, 1, 28, 28}}});
  const int64_t macs_before = profile_model(student).total_macs;
  PddOptions o;
  o.target_macs = 0.5;
  o.gate_lr = 0.1;
  PddResult r = pdd(teacher, student, o, {1, 28, 28}, ds, distill_test::quick_config(4), distill_test::quick_config(1));

  // The gates themselves moved to the budget during training (before the
  // final greedy closing), starting from all open, and stopped there: inside
  // the dead band [target - tolerance, target] give or take a few steps' moves.
  REQUIRE(r.gated_macs.size() == 4);
  INFO("gated MACs at the last epoch's end " << r.gated_macs.back());
  CHECK(r.gated_macs.back() <= 0.5 + 0.03);
  CHECK(r.gated_macs.back() >= 0.5 - 0.05 - 0.03);
  CHECK(r.search.terms.front().extra > 0);  // the penalty was active
  // Physically smaller: fewer MACs and parameters, every group at least one channel.
  CHECK(r.prune.macs_before == macs_before);
  CHECK(r.prune.macs_after <= 0.5 * double(macs_before));
  CHECK(r.prune.macs_after >= 0.4 * double(macs_before));  // landed near the budget, not far below
  CHECK(r.prune.params_after < r.prune.params_before);
  CHECK(profile_model(student).total_macs == r.prune.macs_after);
  bool shrank = false;
  for (const auto& g : r.groups) {
    CHECK(g.after >= 1);
    shrank = shrank || g.after < g.before;
  }
  CHECK(shrank);
  // It runs, carries no gate or mask, and was fine-tuned into something useful.
  torch::jit::Module m = export_module(student);
  m.eval();
  for (const auto& p : m.named_attributes(true)) CHECK(p.name.find("pdd_") == std::string::npos);
  CHECK(m.forward({at::rand({2, 1, 28, 28})}).toTensor().sizes() == at::IntArrayRef({2, 10}));
  REQUIRE(r.finetune.terms.size() == 1);
  CHECK(train::evaluate(m, ds).top1 > 0.4);  // chance is 1/4
}

// A teacher for the tiny PDD runs: a half-width cnn trained briefly on `ds`.
static torch::jit::Module tiny_teacher(const data::TensorDataset& ds) {
  torch::jit::Module teacher = models::build("cnn", 21, 10, 0.5).module;
  train::Trainer t(teacher, distill_test::quick_config(2));
  t.fit(ds);
  teacher.eval();
  return teacher;
}

TEST_CASE("PDD gates that start closed reopen up to the budget", "[distill][pdd]") {
  const data::TensorDataset ds = cli_test::quadrant_set(256, 7);
  torch::jit::Module teacher = tiny_teacher(ds);
  Graph student = import_module(models::build("cnn", 22, 10, 0.25).module);
  PddOptions o;
  o.target_macs = 0.6;
  o.gate_lr = 0.1;
  o.gate_init = -0.5;  // every gate closed: only each group's floor (a quarter) is open
  PddResult r = pdd(teacher, student, o, {1, 28, 28}, ds, distill_test::quick_config(4), distill_test::quick_config(0));
  REQUIRE(r.gated_macs.size() == 4);
  INFO("gated MACs per epoch " << r.gated_macs[0] << " " << r.gated_macs[1] << " " << r.gated_macs[2] << " "
                               << r.gated_macs[3]);
  // The floor alone keeps about 1/16 of the MACs; the penalty below the dead
  // band pushed the gates open until the budget was used (32 steps: the last
  // moves, with momentum, may end a little over it), not all the way open.
  CHECK(r.gated_macs.front() < 0.6 - 0.05);
  CHECK(r.gated_macs.back() >= 0.6 - 0.05 - 0.03);
  CHECK(r.gated_macs.back() <= 0.6 + 0.1);
  CHECK(r.prune.macs_after <= 0.6 * double(r.prune.macs_before));
  CHECK(r.prune.macs_after >= 0.5 * double(r.prune.macs_before));
}

TEST_CASE("PDD keeps each group's floor and refuses a budget the floor exceeds", "[distill][pdd]") {
  const data::TensorDataset ds = cli_test::quadrant_set(128, 7);
  torch::jit::Module teacher = tiny_teacher(ds);
  Graph student = import_module(models::build("cnn", 22, 10, 0.25).module);
  Graph copy = student;
  PddOptions o;
  o.target_macs = 0.3;
  o.gate_lr = 0.2;
  o.budget_weight = 20;
  o.min_group_keep = 0.5;
  PddResult r = pdd(teacher, student, o, {1, 28, 28}, ds, distill_test::quick_config(3), distill_test::quick_config(0));
  REQUIRE(!r.groups.empty());
  for (const auto& g : r.groups) {
    INFO(g.name << " " << g.before << " -> " << g.after);
    CHECK(g.after >= (g.before + 1) / 2);
  }
  CHECK(r.prune.macs_after <= 0.3 * double(r.prune.macs_before));

  // Half of every group already keeps about a quarter of the MACs; all of them, everything.
  o.min_group_keep = 1.0;
  CHECK_THROWS_WITH(pdd(teacher, copy, o, {1, 28, 28}, ds, distill_test::quick_config(1), distill_test::quick_config(0)),
                    Catch::Contains("is below the") && Catch::Contains("--min-group-keep"));
}

// Half of the features.8 group's channels carry nothing (their filters and
// batch-norm scales are zero; the shifts are zeroed too and only ever become
// constants). The even split pushes each features.8 gate about 4x less than
// the first two groups' (its channels are cheaper), so the budget is met
// there first; split by importance, the dead channels are pushed hardest.
TEST_CASE("PDD with the budget split by importance closes the channels that carry nothing", "[distill][pdd]") {
  const data::TensorDataset ds = cli_test::quadrant_set(256, 7);
  torch::jit::Module teacher = tiny_teacher(ds);
  auto half_dead_student = [] {
    torch::jit::Module m = models::build("cnn", 22, 10, 0.25).module;
    at::NoGradGuard no_grad;
    for (const auto& p : m.named_parameters()) {
      if (p.name.rfind("features.8.", 0) == 0 || p.name.rfind("features.9.", 0) == 0) p.value.narrow(0, 0, 16).zero_();
    }
    return import_module(m);
  };
  // Channels of features.8 that survived, and how many of them are dead (all-zero filters).
  auto features8 = [](const Graph& g) {
    torch::jit::Module m = export_module(g);
    at::Tensor w;
    for (const auto& p : m.named_parameters()) {
      if (p.name == "features.8.weight") w = p.value;
    }
    const int64_t dead = w.flatten(1).abs().sum(1).eq(0).sum().item<int64_t>();
    return std::make_pair(w.size(0), dead);
  };
  PddOptions o;
  o.target_macs = 0.6;
  o.gate_lr = 0.1;
  Graph even = half_dead_student();
  pdd(teacher, even, o, {1, 28, 28}, ds, distill_test::quick_config(4), distill_test::quick_config(0));
  o.budget_by_importance = true;
  Graph weighted = half_dead_student();
  PddResult r = pdd(teacher, weighted, o, {1, 28, 28}, ds, distill_test::quick_config(4), distill_test::quick_config(0));

  const auto [even_kept, even_dead] = features8(even);
  const auto [weighted_kept, weighted_dead] = features8(weighted);
  INFO("features.8 kept/dead: even " << even_kept << "/" << even_dead << ", by importance " << weighted_kept << "/"
                                     << weighted_dead);
  CHECK(even_dead >= 12);     // the even split leaves most dead channels in place
  CHECK(weighted_dead <= 4);  // split by importance, they go
  CHECK(weighted_dead < even_dead);
  CHECK(weighted_kept >= 16);  // the live ones stay
  CHECK(r.prune.macs_after <= 0.6 * double(r.prune.macs_before));
}

// 256 samples in batches of 32: 8 steps per epoch.
TEST_CASE("PDD runs one learning-rate schedule over both phases or restarts it for the fine-tuning", "[distill][pdd]") {
  const data::TensorDataset ds = cli_test::quadrant_set(256, 7);
  torch::jit::Module teacher = tiny_teacher(ds);
  PddOptions o;
  o.target_macs = 0.6;
  const train::TrainConfig search = distill_test::quick_config(2);
  train::TrainConfig finetune = distill_test::quick_config(2);
  finetune.optimizer.lr = 0.01;
  const int64_t per_epoch = 8;

  Graph restarted = import_module(models::build("cnn", 22, 10, 0.25).module);
  PddResult r = pdd(teacher, restarted, o, {1, 28, 28}, ds, search, finetune);
  REQUIRE(r.epoch_lr.size() == 4);
  // Each phase its own cosine: the search's over 2 epochs at 0.05, then the fine-tuning's at 0.01 from its top.
  CHECK(r.epoch_lr[0] == Approx(0.05));
  CHECK(r.epoch_lr[1] == Approx(train::lr_at(search.schedule, 0.05, per_epoch, 2 * per_epoch)));
  CHECK(r.epoch_lr[2] == Approx(0.01));
  CHECK(r.epoch_lr[3] == Approx(train::lr_at(finetune.schedule, 0.01, per_epoch, 2 * per_epoch)));

  o.one_schedule = true;
  Graph continued = import_module(models::build("cnn", 22, 10, 0.25).module);
  PddResult c = pdd(teacher, continued, o, {1, 28, 28}, ds, search, finetune);
  REQUIRE(c.epoch_lr.size() == 4);
  // One cosine over 4 epochs at the search's 0.05: the fine-tuning's 0.01 is not used, and its
  // first epoch starts where the search's last left off.
  for (int64_t e = 0; e < 4; ++e) {
    INFO("epoch " << e);
    CHECK(c.epoch_lr[size_t(e)] == Approx(train::lr_at(search.schedule, 0.05, e * per_epoch, 4 * per_epoch)));
  }
  CHECK(c.epoch_lr[2] > 0.02);
  CHECK(c.epoch_lr[3] < c.epoch_lr[2]);
  CHECK(c.finetune.terms.size() == 2);
  CHECK(profile_model(continued).total_macs <= 0.6 * double(c.prune.macs_before));
}

TEST_CASE("PDD refuses a budget outside (0, 1) and bad KD settings", "[distill][pdd]") {
  for (double target : {0.0, 1.0, 1.5, -0.2}) {
    PddOptions o;
    o.target_macs = target;
    CHECK_THROWS_AS(o.validate(), Error);
  }
  PddOptions t;
  t.distill.temperature = 0;
  CHECK_THROWS_AS(t.validate(), Error);
  PddOptions a;
  a.distill.alpha = 2;
  CHECK_THROWS_AS(a.validate(), Error);
  auto refused = [](auto change, const std::string& text) {
    PddOptions o;
    change(o);
    CHECK_THROWS_WITH(o.validate(), Catch::Contains(text));
  };
  refused([](PddOptions& o) { o.min_group_keep = 0; }, "--min-group-keep must be in (0, 1]");
  refused([](PddOptions& o) { o.min_group_keep = 1.5; }, "--min-group-keep must be in (0, 1]");
  refused([](PddOptions& o) { o.budget_tolerance = 0.6; }, "--budget-tolerance must be in [0, --target-macs)");
  refused([](PddOptions& o) { o.budget_tolerance = -0.1; }, "--budget-tolerance must be in [0, --target-macs)");
  refused([](PddOptions& o) { o.gate_init = 0; }, "initial value");
  PddOptions ok;
  ok.gate_init = -0.5;
  ok.budget_tolerance = 0;
  CHECK_NOTHROW(ok.validate());
}

TEST_CASE("compress pdd writes a smaller student and refuses bad input", "[cli][pdd]") {
  const compress::testing::TempDir dir("cli_pdd");
  const std::string train = cli_test::make_set(dir, "train.pt", 128, 8), test = cli_test::make_set(dir, "test.pt", 64, 9);
  const std::string teacher = dir.file("teacher.pt"), student = dir.file("student.pt"), out = dir.file("pdd.pt");
  models::build("cnn", 1, 10, 0.25).module.save(teacher);
  models::build("cnn", 2, 10, 0.25).module.save(student);
  const std::string base = "pdd --teacher " + teacher + " --student " + student + " --data " + train + " --test-data " +
                           test + " --epochs 2 --batch-size 32 --threads 1 --quiet -o " + out;
  cli_test::Run ok = cli_test::run(base + " --target-macs 0.6 --finetune-epochs 1 --json");
  INFO(ok.out);
  REQUIRE(ok.code == 0);
  auto j = nlohmann::json::parse(ok.out);
  CHECK(j["macs_after"].get<double>() <= 0.6 * j["macs_before"].get<double>());
  CHECK(j["params_after"].get<int64_t>() < j["params_before"].get<int64_t>());
  REQUIRE(fs::exists(out));
  CHECK(models::count_parameters(torch::jit::load(out)) == j["params_after"].get<int64_t>());
  fs::remove(out);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--target-macs 1.2", "--target-macs must be in (0, 1)"},
      {"--target-macs 0", "--target-macs must be in (0, 1)"},
      {"", "--target-macs F is required"},
      {"--target-macs 0.5 --temperature 0", "temperature"},
      {"--target-macs 0.5 --alpha 1.1", "alpha"},
      {"--target-macs 0.5 --min-group-keep 0", "--min-group-keep must be in (0, 1]"},
      {"--target-macs 0.5 --budget-tolerance 0.5", "--budget-tolerance must be in [0, --target-macs)"},
      {"--target-macs 0.5 --min-group-keep 1", "is below the"},
      {"--target-macs 0.5 --finetune-epochs 1 --one-schedule --finetune-lr 0.01", "--finetune-lr sets the rate"},
  };
  distill_test::check_refused(base, bad, out);
}
