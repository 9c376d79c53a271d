// PQK on a tiny CNN: phase 1 masks channels on schedule while training with
// fake quantization, phase 2 distils the pruned student from the unpruned
// network with the removed weights restored; the result is INT8, smaller,
// runs, and loads in Python.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "compress/analysis/profile.h"
#include "compress/distillation/pqk.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"
#include "compress/pruning/groups.h"
#include "compress/train/evaluate.h"
#include "distill_test_util.h"
#include "quantization/quant_test_util.h"
#include "skip.h"
#include "train/cli_run.h"

using namespace compress;
using namespace compress::distillation;
namespace fs = std::filesystem;

namespace {

// A cnn at half width trained for two epochs on the quadrant set.
Graph trained_cnn(const data::TensorDataset& ds) {
  torch::jit::Module m = models::build("cnn", 31, 10, 0.5).module;
  train::Trainer t(m, distill_test::quick_config(2));
  t.fit(ds);
  m.eval();
  Graph g = import_module(m);
  g.set_example_inputs({InputSpec{{1, 1, 28, 28}}});
  return g;
}

quant::CalibrationData first_batches(const data::TensorDataset& ds, int64_t n) {
  at::Tensor x = ds.inputs;
  return {n, [x](int64_t i) { return x.narrow(0, i * 32, 32); }};
}

train::TrainConfig pqk_config(int64_t epochs) {
  train::TrainConfig c = distill_test::quick_config(epochs);
  c.optimizer.lr = 0.02;
  c.schedule.kind = "cosine";
  return c;
}

// The folded float graph PQK starts from (what prepare_qat folds).
Graph folded(const Graph& g) {
  Graph f = g;
  quant::QuantizeReport unused;
  quant::prepare_float_graph(f, unused);
  return f;
}

// The producer's weight of group `name` (its output rows are the channels).
std::string producer_weight(const Graph& g, const std::string& name) {
  const pruning::GroupAnalysis a = pruning::analyze_groups(g);
  const pruning::Group& grp = a.groups[size_t(a.find(name))];
  for (const auto& s : grp.slices)
    if (s.role == pruning::ChannelSlice::Role::Out && s.dim == 0 && g.param(s.param).dim() >= 2) return s.param;
  FAIL("group " << name << " has no producer weight");
  throw;
}

// The INT8 model of `r`: the converted graph calls the compress INT8 ops, no
// float conv or linear is left, and it learned the task (chance is 1/4).
torch::jit::Module check_int8(const PqkResult& r, const data::TensorDataset& ds) {
  Graph int8 = quant::convert_qat(r.student);
  auto ops = testing::op_counts(int8);
  CHECK(ops["compress::conv2d_int8"] >= 2);
  CHECK(ops["compress::linear_int8"] >= 1);
  CHECK(ops["nn.Conv2d"] + ops["nn.Linear"] == 0);
  torch::jit::Module m = export_module(int8);
  m.eval();
  CHECK(train::evaluate(m, ds).top1 > 0.6);
  return m;
}

// Half the MACs in two masking steps, KD from the input model whatever the gate would say.
PqkOptions input_teacher_options() {
  PqkOptions o;
  o.target_macs = 0.5;
  o.prune_steps = 2;
  o.teacher = PqkTeacher::Input;
  o.kd_gate = false;
  return o;
}

}  // namespace

TEST_CASE("PQK prunes to the MACs target with fake quant, distils, and converts to a smaller INT8 model",
          "[distill][pqk]") {
  const data::TensorDataset ds = cli_test::quadrant_set(256, 7);
  const Graph model = trained_cnn(ds);
  PqkOptions o;
  o.target_macs = 0.5;
  o.prune_steps = 3;
  o.prune_end = 0.5;
  PqkResult r = pqk(model, o, {1, 28, 28}, first_batches(ds, 4), ds, pqk_config(3), pqk_config(3));

  // Three masking steps down the schedule to the target, the first before training.
  REQUIRE(r.prune_steps.size() == 3);
  CHECK(r.prune_steps[0].after_steps == 0);
  CHECK(r.prune_steps[0].target > r.prune_steps[1].target);
  CHECK(r.prune_steps[2].target == Approx(0.5));
  CHECK(r.prune_steps[1].after_steps < r.prune_steps[2].after_steps);
  CHECK(r.prune_steps[2].after_steps <= r.phase1.steps / 2 + 1);
  for (const auto& s : r.prune_steps) CHECK(s.macs_kept <= s.target + 1e-9);

  // Physically smaller: MACs at or under the target, fewer parameters.
  CHECK(r.prune.macs_before == profile_model(folded(model)).total_macs);
  CHECK(r.prune.macs_after <= 0.5 * double(r.prune.macs_before));
  CHECK(r.prune.params_after < r.prune.params_before);
  CHECK_FALSE(r.kept_channels.empty());

  // Losses decrease in both phases.
  REQUIRE(r.phase1.history.size() == 3);
  CHECK(r.phase1.history.back().train_loss < r.phase1.history.front().train_loss);
  REQUIRE(r.phase2.terms.size() == 3);
  CHECK(r.phase2.terms.back().total < r.phase2.terms.front().total);
  CHECK(r.phase2.terms.front().kd > 0);

  torch::jit::Module m = check_int8(r, ds);
  CHECK(profile_model(r.phase1_student).total_macs == r.prune.macs_after);
  CHECK(m.forward({at::rand({2, 1, 28, 28})}).toTensor().sizes() == at::IntArrayRef({2, 10}));
}

TEST_CASE("the PQK teacher is the unpruned network with the phase-1 weights and the removed weights restored",
          "[distill][pqk]") {
  const data::TensorDataset ds = cli_test::quadrant_set(128, 8);
  const Graph model = trained_cnn(ds);
  const Graph start = folded(model);
  // One masking step, before training: the removed channels keep the
  // values they started with, while the kept ones train. No repair: the
  // teacher is the restored network itself.
  PqkOptions o;
  o.target_macs = 0.5;
  o.prune_steps = 1;
  o.repair_fraction = 0;
  PqkResult r = pqk(model, o, {1, 28, 28}, first_batches(ds, 2), ds, pqk_config(2), pqk_config(1));
  CHECK(r.repair.steps == 0);

  // Same architecture as the unpruned folded model, parameter by parameter.
  for (const auto& name : start.param_order) {
    REQUIRE(r.teacher.has_param(name));
    CHECK(r.teacher.param(name).sizes() == start.param(name).sizes());
    CHECK(at::equal(r.teacher.param(name), r.stale_teacher.param(name)));
  }
  // The first convolution's group: its weight's input is the image, so
  // whole rows compare (later layers also lose input columns).
  REQUIRE(r.kept_channels.count("features.0"));
  const std::vector<int64_t>& kept = r.kept_channels.at("features.0");
  const std::string weight = producer_weight(start, "features.0");
  const at::Tensor teacher_w = r.teacher.param(weight), start_w = start.param(weight);
  const at::Tensor student_w = r.phase1_student.param(weight);
  REQUIRE(student_w.size(0) == int64_t(kept.size()));
  int64_t removed = -1;
  for (int64_t c = 0; c < start_w.size(0) && removed < 0; ++c)
    if (std::find(kept.begin(), kept.end(), c) == kept.end()) removed = c;
  REQUIRE(removed >= 0);
  // A removed channel: its weights restored (not the zeros the student trained with).
  CHECK(teacher_w[removed].abs().sum().item<double>() > 0);
  CHECK(at::equal(teacher_w[removed], start_w[removed]));
  // Every kept channel: the phase-1 trained weights, which moved away from the start.
  bool moved = false;
  for (size_t i = 0; i < kept.size(); ++i) {
    CHECK(at::equal(teacher_w[kept[i]], student_w[int64_t(i)]));
    moved = moved || !at::equal(student_w[int64_t(i)], start_w[kept[i]]);
  }
  CHECK(moved);
}

TEST_CASE("the PQK teacher repair trains only the restored weights and beats the stale teacher",
          "[distill][pqk]") {
  // The quadrant task made hard (the quadrant 0.14 brighter under noise up
  // to 1.06), so the models err and a loss has room to fall.
  data::TensorDataset ds = cli_test::quadrant_set(256, 9);
  ds.inputs = ds.inputs * 0.2 + at::rand(ds.inputs.sizes(), at::make_generator<at::CPUGeneratorImpl>(10));
  const Graph model = trained_cnn(ds);
  // Most channels masked before a long phase 1 at a high learning rate: the
  // kept weights move far from the values the removed ones were trained
  // with, so the restored network is a poor teacher until repaired.
  PqkOptions o;
  o.target_macs = 0.3;
  o.prune_steps = 1;
  o.repair_fraction = 0.5;
  o.check_samples = 64;
  train::TrainConfig phase1 = pqk_config(3);
  phase1.optimizer.lr = 0.05;
  PqkResult r = pqk(model, o, {1, 28, 28}, first_batches(ds, 2), ds, phase1, pqk_config(1));
  // Half of the samples outside the check set, one pass at batch 32.
  CHECK(r.check_samples == 64);
  CHECK(r.repair.steps == (96 + 31) / 32);

  // The teacher still contains the student exactly: removing the masked
  // channels from it gives phase 1's student, entry for entry.
  Graph contained = r.teacher;
  pruning::prune_channels(contained, r.kept_channels);
  for (const auto& name : r.phase1_student.param_order)
    CHECK(at::equal(contained.param(name), r.phase1_student.param(name)));
  // ...while the restored weights changed.
  bool changed = false;
  for (const auto& name : r.teacher.param_order)
    changed = changed || !at::equal(r.teacher.param(name), r.stale_teacher.param(name));
  CHECK(changed);

  // More accurate than before the repair, on the whole set.
  torch::jit::Module stale = export_module(r.stale_teacher), repaired = export_module(r.teacher);
  stale.eval();
  repaired.eval();
  const train::EvalResult before = train::evaluate(stale, ds), after = train::evaluate(repaired, ds);
  INFO("stale teacher loss " << before.loss << " top-1 " << before.top1 << ", repaired " << after.loss << " "
                             << after.top1);
  CHECK(after.loss < before.loss);
  CHECK(after.top1 > before.top1);
  CHECK(r.teacher_check_top1 > r.stale_teacher_check_top1);
  // The gate: KD ran exactly when the teacher beat the student on the check samples.
  CHECK(r.kd_used == (r.teacher_check_top1 > r.student_check_top1));
}

TEST_CASE("PQK with the input teacher distils from the float model as given, with no repair, in both phases",
          "[distill][pqk]") {
  const data::TensorDataset ds = cli_test::quadrant_set(128, 11);
  const Graph model = trained_cnn(ds);
  const Graph before = model;
  PqkOptions o = input_teacher_options();
  o.phase1_kd = true;
  o.check_samples = 32;
  PqkResult r = pqk(model, o, {1, 28, 28}, first_batches(ds, 2), ds, pqk_config(2), pqk_config(1));

  // The teacher is the input, entry for entry (unfolded: its batch norms
  // are still there), and the input was left unchanged.
  CHECK(r.repair.steps == 0);
  REQUIRE(r.teacher.param_order == model.param_order);
  for (const auto& name : model.param_order) {
    CHECK(at::equal(r.teacher.param(name), model.param(name)));
    CHECK(at::equal(model.param(name), before.param(name)));
  }
  // The restored network (folded, unpruned) was still built and measured
  // on the check samples, next to the teacher, for the report.
  CHECK(r.stale_teacher.param_order == folded(model).param_order);
  CHECK(r.stale_teacher_check_top1 >= 0);
  CHECK(r.teacher_check_top1 >= 0);
  // Phase 1 distilled (its KD term is there, its loss fell) under the
  // masks: the physically pruned student is at the target.
  REQUIRE(r.phase1_terms.size() == 2);
  CHECK(r.phase1_terms.front().kd > 0);
  CHECK(r.phase1_terms.back().total < r.phase1_terms.front().total);
  REQUIRE(r.prune_steps.size() == 2);
  CHECK(r.prune_steps.back().macs_kept <= 0.5);
  // Phase 2 distilled too (gate off).
  CHECK(r.kd_used);
  REQUIRE(r.phase2.terms.size() == 1);
  CHECK(r.phase2.terms.front().kd > 0);
  CHECK(r.prune.macs_after <= 0.5 * double(r.prune.macs_before));
}

// Ops of `g` whose name contains `part`.
int count_ops(const Graph& g, const std::string& part) {
  int n = 0;
  for (const auto& [name, count] : testing::op_counts(g))
    if (name.find(part) != std::string::npos) n += count;
  return n;
}

// `g` (unpruned) with every entry of the channels `keep` leaves out zeroed:
// the network phase 1's masks computed.
Graph zero_removed_channels(Graph g, const std::map<std::string, std::vector<int64_t>>& keep) {
  torch::NoGradGuard no_grad;
  const pruning::GroupAnalysis a = pruning::analyze_groups(g);
  for (const auto& [group, kept] : keep) {
    const pruning::Group& grp = a.groups[size_t(a.find(group))];
    for (const pruning::ChannelSlice& s : grp.slices) {
      at::Tensor p = g.param(s.param).clone();
      for (int64_t c = 0; c < grp.width; ++c)
        if (std::find(kept.begin(), kept.end(), c) == kept.end()) p.narrow(s.dim, s.offset + c * s.stride, s.stride).zero_();
      g.set_param(s.param, p);
    }
  }
  return g;
}

TEST_CASE("PQK with phase 1 in float trains the unfolded network under the masks and fake-quantizes only in phase 2",
          "[distill][pqk]") {
  const data::TensorDataset ds = cli_test::quadrant_set(256, 13);
  const Graph model = trained_cnn(ds);
  REQUIRE(count_ops(model, "BatchNorm") > 0);
  PqkOptions o = input_teacher_options();
  o.phase1_float = true;
  o.recalibrate_batches = 0;
  PqkResult r = pqk(model, o, {1, 28, 28}, first_batches(ds, 2), ds, pqk_config(2), pqk_config(1));

  // Phase 1 ran on the float network as given: its student and the restored
  // network keep their batch norms and have no fake quantizer.
  CHECK(count_ops(r.phase1_student, "BatchNorm") == count_ops(model, "BatchNorm"));
  CHECK(count_ops(r.phase1_student, "fake_quantize") == 0);
  CHECK(count_ops(r.stale_teacher, "fake_quantize") == 0);
  CHECK(r.stale_teacher.param_order == model.param_order);
  CHECK(r.batch_norms_recalibrated == 0);
  CHECK(r.phase1.history.size() == 2);
  CHECK(r.prune.macs_after <= 0.5 * double(r.prune.macs_before));
  CHECK(profile_model(r.phase1_student).total_macs == r.prune.macs_after);

  // The masks were exact with batch norms training: the unpruned network
  // with the removed channels zeroed computes what the pruned student does.
  torch::jit::Module masked = export_module(zero_removed_channels(r.stale_teacher, r.kept_channels));
  torch::jit::Module pruned = export_module(r.phase1_student);
  masked.eval();
  pruned.eval();
  const at::Tensor x = ds.inputs.narrow(0, 0, 16);
  CHECK(at::allclose(masked.forward({x}).toTensor(), pruned.forward({x}).toTensor(), 1e-4, 1e-5));
  // Half its MACs gone, the float student still solves the task (chance is 1/4).
  CHECK(train::evaluate(pruned, ds).top1 > 0.9);

  // Phase 2 fake-quantized the student and distilled; it converts to INT8.
  CHECK(count_ops(r.student.graph, "fake_quantize") > 0);
  CHECK(r.kd_used);
  REQUIRE(r.phase2.terms.size() == 1);
  CHECK(r.phase2.terms.front().kd > 0);
  check_int8(r, ds);

  // With re-estimation (the default 20 batches; the set holds 4 of 64), the
  // pruned student's statistics are exact ones for its final weights: a
  // second re-estimation finds the same.
  o.recalibrate_batches = 20;
  PqkResult rc = pqk(model, o, {1, 28, 28}, first_batches(ds, 2), ds, pqk_config(1), pqk_config(0));
  CHECK(rc.batch_norms_recalibrated == count_ops(model, "BatchNorm"));
  Graph again = rc.phase1_student;
  pruning::recalibrate_batch_norm(again, ds, 20);
  int stats = 0;
  for (const auto& name : again.param_order) {
    if (name.find("running_") == std::string::npos) continue;
    ++stats;
    CHECK(at::allclose(again.param(name), rc.phase1_student.param(name), 1e-5, 1e-6));
  }
  CHECK(stats == 2 * rc.batch_norms_recalibrated);
}

TEST_CASE("PQK reports no KD when alpha is 0, even with the gate off", "[distill][pqk]") {
  const data::TensorDataset ds = cli_test::quadrant_set(64, 12);
  const Graph model = trained_cnn(ds);
  PqkOptions o;
  o.target_macs = 0.5;
  o.prune_steps = 1;
  o.teacher = PqkTeacher::Input;
  o.kd_gate = false;
  o.distill.alpha = 0;
  PqkResult r = pqk(model, o, {1, 28, 28}, first_batches(ds, 1), ds, pqk_config(1), pqk_config(1));
  REQUIRE(r.phase2.terms.size() == 1);
  CHECK_FALSE(r.kd_used);
  o.distill.alpha = 0.5;
  CHECK(pqk(model, o, {1, 28, 28}, first_batches(ds, 1), ds, pqk_config(1), pqk_config(1)).kd_used);
}

TEST_CASE("PQK's --teacher names restored or input", "[distill][pqk]") {
  CHECK(parse_pqk_teacher("restored") == PqkTeacher::Restored);
  CHECK(parse_pqk_teacher("input") == PqkTeacher::Input);
  CHECK_THROWS_WITH(parse_pqk_teacher("float"), Catch::Contains("--teacher must be restored or input"));
}

TEST_CASE("PQK refuses a target outside (0, 1), bad KD and repair settings and the ste method", "[distill][pqk]") {
  for (double target : {0.0, 1.0, 1.5, -0.2}) {
    PqkOptions o;
    o.target_macs = target;
    CHECK_THROWS_WITH(o.validate(), Catch::Contains("--target-macs must be in (0, 1)"));
  }
  PqkOptions t;
  t.distill.temperature = 0;
  CHECK_THROWS_WITH(t.validate(), Catch::Contains("temperature"));
  PqkOptions a;
  a.distill.alpha = -0.1;
  CHECK_THROWS_WITH(a.validate(), Catch::Contains("alpha"));
  PqkOptions s;
  s.qat.method = quant::QatMethod::Ste;
  CHECK_THROWS_AS(s.validate(), Error);
  PqkOptions steps;
  steps.prune_steps = 0;
  CHECK_THROWS_AS(steps.validate(), Error);
  for (double fraction : {-0.1, 1.5}) {
    PqkOptions repair;
    repair.repair_fraction = fraction;
    CHECK_THROWS_WITH(repair.validate(), Catch::Contains("--repair-fraction must be in [0, 1]"));
  }
  PqkOptions check;
  check.check_samples = -1;
  CHECK_THROWS_WITH(check.validate(), Catch::Contains("--check-samples"));
  PqkOptions recalibrate;
  recalibrate.recalibrate_batches = -1;
  CHECK_THROWS_WITH(recalibrate.validate(), Catch::Contains("--recalibrate-bn must not be negative"));
}

TEST_CASE("compress pqk writes an INT8 model that loads in Python and refuses bad input", "[cli][pqk]") {
  const testing::TempDir dir("cli_pqk");
  const std::string train = cli_test::make_set(dir, "train.pt", 128, 8);
  const std::string in = dir.file("in.pt"), out = dir.file("pqk.pt");
  models::build("cnn", 3, 10, 0.25).module.save(in);
  const std::string base = "pqk " + in + " -o " + out + " --data " + train +
                           " --epochs 2 --finetune-epochs 1 --batch-size 32 --calib-batches 2 --threads 1 --quiet";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--target-macs 1.2", "--target-macs must be in (0, 1)"},
      {"--target-macs 0", "--target-macs must be in (0, 1)"},
      {"", "--target-macs F is required"},
      {"--target-macs 0.5 --temperature 0", "temperature"},
      {"--target-macs 0.5 --alpha 1.1", "alpha"},
      {"--target-macs 0.5 --alpha -0.5", "alpha"},
      {"--target-macs 0.5 --repair-fraction 1.5", "--repair-fraction must be in [0, 1]"},
      {"--target-macs 0.5 --check-samples -3", "--check-samples must not be negative"},
      {"--target-macs 0.5 --phase1-float --recalibrate-bn -1", "--recalibrate-bn must not be negative"},
      {"--target-macs 0.5 --teacher float", "--teacher must be restored or input"},
  };
  distill_test::check_refused(base, bad, out);
  distill_test::check_refused("pqk " + in + " -o " + out + " --target-macs 0.5",
                              {{"--epochs 1", "--data is required"},
                               {"--data " + dir.file("none.pt"), "none.pt"},
                               {"--data " + train + " --input-shape 1,3,28,28", "does not match the samples"}},
                              out);

  cli_test::Run ok = cli_test::run(base + " --target-macs 0.5 --latency --json");
  INFO(ok.out);
  REQUIRE(ok.code == 0);
  auto j = nlohmann::json::parse(ok.out);
  CHECK(j["macs_kept"].get<double>() <= 0.5);
  CHECK(j["int8_layers"].get<int>() >= 3);
  // The default repair ran (a quarter of the 64 samples outside the check set), the gate reported its figures.
  CHECK(j["training"]["repair_steps"].get<int>() == 1);
  CHECK(j["check"]["samples"].get<int>() == 64);
  for (const char* m : {"stale_teacher_top1", "teacher_top1", "student_top1"}) {
    CHECK(j["check"][m].get<double>() >= 0);
    CHECK(j["check"][m].get<double>() <= 100);
  }
  CHECK(j["training"]["kd_used"].get<bool>() ==
        (j["check"]["teacher_top1"].get<double>() > j["check"]["student_top1"].get<double>()));
  for (const char* model : {"float", "int8"})
    for (const char* batch : {"1", "32"}) CHECK(j["latency_ms"][model][batch].get<double>() > 0);
  REQUIRE(fs::exists(out));

  // --teacher input --phase1-kd: no repair, KD from the input model itself
  // (its test top-1 is the float model's exactly), in both phases.
  cli_test::Run in_teacher = cli_test::run(base + " --target-macs 0.5 --teacher input --phase1-kd --no-kd-gate --json");
  INFO(in_teacher.out);
  REQUIRE(in_teacher.code == 0);
  auto ji = nlohmann::json::parse(in_teacher.out);
  CHECK(ji["training"]["teacher"] == "input");
  CHECK(ji["training"]["repair_steps"].get<int>() == 0);
  CHECK(ji["training"]["kd_used"].get<bool>());
  CHECK(ji["training"]["phase1_kd"].get<bool>());
  REQUIRE(ji["training"]["phase1_terms"].size() == 2);
  CHECK(ji["training"]["phase1_terms"][0]["kd"].get<double>() > 0);
  CHECK(ji["test"]["teacher_top1"].get<double>() == ji["test"]["float_top1"].get<double>());

  // --phase1-float: phase 1 in float, the batch norms re-estimated after the removal, INT8 all the same.
  cli_test::Run in_float = cli_test::run(base + " --target-macs 0.5 --teacher input --phase1-float --json");
  INFO(in_float.out);
  REQUIRE(in_float.code == 0);
  auto jf = nlohmann::json::parse(in_float.out);
  CHECK(jf["training"]["phase1_float"].get<bool>());
  CHECK(jf["training"]["batch_norms_recalibrated"].get<int>() > 0);
  CHECK(jf["macs_kept"].get<double>() <= 0.5);
  CHECK(jf["int8_layers"].get<int>() >= 3);

  // Python with the compress ops library loads it and reproduces the C++ outputs.
  if (testing::run_command(std::string(COMPRESS_SYSTEM_PYTHON) + " -c 'import torch' > /dev/null 2>&1") != 0)
    COMPRESS_SKIP(std::string(COMPRESS_SYSTEM_PYTHON) + " cannot import torch (the Python fixtures are unavailable)");
  const std::string with_expectation = dir.file("expect.pt"), script = dir.file("load.py");
  {
    torch::jit::Module m = load_module(out);
    m.eval();
    torch::NoGradGuard no_grad;
    at::Tensor x = at::rand({3, 1, 28, 28});
    m.register_buffer("example_input", x);
    m.register_buffer("expected_output", m.forward({x}).toTensor());
    m.save(with_expectation);
  }
  std::ofstream(script) << "import sys, torch\n"
                           "torch.ops.load_library(sys.argv[1])\n"
                           "m = torch.jit.load(sys.argv[2]).eval()\n"
                           "assert 'compress::conv2d_int8' in str(m.inlined_graph)\n"
                           "with torch.no_grad():\n"
                           "    y = m(m.example_input)\n"
                           "sys.exit(0 if torch.equal(y, m.expected_output) else 1)\n";
  const std::string log = dir.file("python.log");
  const int code = testing::run_command(std::string(COMPRESS_SYSTEM_PYTHON) + " " + script + " " + COMPRESS_BINARY_DIR +
                                        "/src/ops/libcompress_ops.so " + with_expectation + " > " + log + " 2>&1");
  INFO(testing::slurp(log));
  CHECK(code == 0);
  fs::remove(out);

}

TEST_CASE("the PQK example program writes an INT8 model at half the MACs", "[cli][pqk][example]") {
  const testing::TempDir dir("pqk_example");
  const std::string data = cli_test::make_set(dir, "train.pt", 256, 4);
  const std::string in = dir.file("in.pt"), out = dir.file("pqk.pt"), log = dir.file("log.txt");
  models::build("cnn", 5, 10, 0.25).module.save(in);
  const int code = testing::run_command(std::string(COMPRESS_BINARY_DIR) + "/bin/pqk_example " + in + " " + data +
                                        " " + out + " 1 > " + log + " 2>&1");
  const std::string text = testing::slurp(log);
  INFO(text);
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("INT8 student"));
  REQUIRE(fs::exists(out));
  CHECK(testing::op_counts(import_module(load_module(out)))["compress::conv2d_int8"] >= 2);
  CHECK(testing::run_command(std::string(COMPRESS_BINARY_DIR) + "/bin/pqk_example " + in + " " + dir.file("none.pt") +
                             " " + dir.file("other.pt") + " > /dev/null 2>&1") == 2);
}
