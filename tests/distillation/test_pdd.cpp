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
  // final greedy closing), starting from all open.
  REQUIRE(r.gated_macs.size() == 4);
  CHECK(r.gated_macs.back() < 0.6);
  CHECK(r.search.terms.front().extra > 0);  // the penalty was active
  // Physically smaller: fewer MACs and parameters, every group at least one channel.
  CHECK(r.prune.macs_before == macs_before);
  CHECK(r.prune.macs_after <= 0.5 * double(macs_before));
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
  };
  distill_test::check_refused(base, bad, out);
}
