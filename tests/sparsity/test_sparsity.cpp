// Magnitude masks (unstructured, 1x4, N:M; per layer and global), layer
// selection, mask files, the AGP schedule and the trainer callback.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/pruning/sparsity.h"
#include "compress/train/trainer.h"
#include "sparse_models.h"
#include "temp_dir.h"

using namespace compress;
using namespace compress::sparsity;
using compress::testing::TempDir;

namespace {

int64_t count_zeros(const at::Tensor& t) { return t.numel() - t.ne(0).sum().item<int64_t>(); }

std::vector<NamedWeight> random_weights(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return {{"a.weight", at::normal(0.0, 1.0, {16, 32}, gen)},
          {"b.weight", at::normal(0.0, 0.1, {8, 6, 3, 3}, gen)},  // conv, K = 54: not a multiple of 4
          {"c.weight", at::normal(0.0, 3.0, {5, 10}, gen)}};      // K = 10: padded
}

// Non-zeros per group of `m` along the GEMM rows (K padded with zeros).
at::Tensor group_counts(const at::Tensor& w, int64_t m) {
  at::Tensor rows = gemm_rows(w.ne(0).to(at::kFloat));
  const int64_t k = rows.size(1), pad = (k + m - 1) / m * m - k;
  rows = at::constant_pad_nd(rows, {0, pad}, 0);
  return rows.view({rows.size(0), -1, m}).sum(-1);
}

bool bad_input_thrown(const std::function<void()>& f, const std::string& expect) {
  try {
    f();
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find(expect) != std::string::npos);
    return e.kind() == ErrorKind::BadInput;
  }
  return false;
}

}  // namespace

TEST_CASE("parse_pattern reads unstructured, 1xB and N:M and refuses anything else", "[sparsity]") {
  CHECK(parse_pattern("unstructured").kind == PatternKind::Unstructured);
  Pattern b = parse_pattern("1x4");
  CHECK((b.kind == PatternKind::Block && b.block == 4 && b.name() == "1x4"));
  Pattern nm = parse_pattern("2:4");
  CHECK((nm.kind == PatternKind::NofM && nm.n == 2 && nm.m == 4 && nm.max_sparsity() == 0.5));
  CHECK(parse_pattern("1:8").max_sparsity() == 0.875);
  for (const char* bad : {"", "4x1", "1x0", "2x4", "4:4", "0:4", "3:2", "2:", "block", "1x", "2:4:8", "1x4x"})
    CHECK(bad_input_thrown([&] { parse_pattern(bad); }, "unknown sparsity pattern"));
}

TEST_CASE("unstructured masks prune exactly the smallest magnitudes of each layer", "[sparsity]") {
  auto weights = random_weights(1);
  const double s = 0.7;
  Masks masks = magnitude_masks(weights, s, parse_pattern("unstructured"), /*global=*/false);
  REQUIRE(masks.size() == weights.size());
  for (const auto& w : weights) {
    INFO(w.name);
    const at::Tensor& m = masks.at(w.name);
    REQUIRE(m.sizes() == w.weight.sizes());
    CHECK(m.scalar_type() == at::kBool);
    CHECK(m.logical_not().sum().item<int64_t>() == std::llround(s * double(w.weight.numel())));
    at::Tensor a = w.weight.abs();
    CHECK(a.masked_select(m.logical_not()).max().item<float>() <= a.masked_select(m).min().item<float>());
  }
  apply_masks(weights, masks);
  for (const auto& w : weights) CHECK(count_zeros(w.weight) == std::llround(s * double(w.weight.numel())));
}

TEST_CASE("global unstructured masks rank all layers together", "[sparsity]") {
  auto weights = random_weights(2);
  Masks masks = magnitude_masks(weights, 0.5, parse_pattern("unstructured"), /*global=*/true);
  int64_t total = 0, pruned = 0;
  float max_pruned = 0, min_kept = 1e30f;
  for (const auto& w : weights) {
    const at::Tensor& m = masks.at(w.name);
    total += w.weight.numel();
    pruned += m.logical_not().sum().item<int64_t>();
    at::Tensor a = w.weight.abs();
    if (m.logical_not().any().item<bool>()) max_pruned = std::max(max_pruned, a.masked_select(m.logical_not()).max().item<float>());
    if (m.any().item<bool>()) min_kept = std::min(min_kept, a.masked_select(m).min().item<float>());
  }
  CHECK(pruned == std::llround(0.5 * double(total)));
  CHECK(max_pruned <= min_kept);
  // The layer of small weights (std 0.1) loses far more than the large one (std 3).
  const double b = masks.at("b.weight").logical_not().to(at::kDouble).mean().item<double>();
  const double c = masks.at("c.weight").logical_not().to(at::kDouble).mean().item<double>();
  CHECK(b > 0.9);
  CHECK(c < 0.1);
}

TEST_CASE("1x4 masks prune whole blocks of 4 along the GEMM rows, padding a short last block", "[sparsity]") {
  auto weights = random_weights(3);
  const double s = 0.75;
  Masks masks = magnitude_masks(weights, s, parse_pattern("1x4"), /*global=*/false);
  apply_masks(weights, masks);
  for (const auto& w : weights) {
    INFO(w.name);
    at::Tensor rows = gemm_rows(masks.at(w.name).to(at::kFloat));
    const int64_t k = rows.size(1), blocks_per_row = (k + 3) / 4;
    at::Tensor counts = group_counts(masks.at(w.name), 4);
    // Each block is kept whole or pruned whole; the padded last block counts its real entries.
    for (int64_t r = 0; r < rows.size(0); ++r)
      for (int64_t b = 0; b < blocks_per_row; ++b) {
        const int64_t width = std::min<int64_t>(4, k - 4 * b);
        const int64_t c = counts[r][b].item<int64_t>();
        CHECK((c == 0 || c == width));
      }
    const int64_t blocks = rows.size(0) * blocks_per_row;
    CHECK(counts.eq(0).sum().item<int64_t>() == std::llround(s * double(blocks)));
    WeightSparsity ws = measure(w.weight);
    CHECK(ws.block_sparsity == Approx(double(std::llround(s * double(blocks))) / double(blocks)));
  }
}

TEST_CASE("2:4 masks keep the 2 largest of every group of 4, and ramp over groups below 50%", "[sparsity]") {
  auto weights = random_weights(4);
  Pattern p = parse_pattern("2:4");
  Masks full = magnitude_masks(weights, 0.5, p, /*global=*/false);
  for (const auto& w : weights) {
    INFO(w.name);
    const at::Tensor& m = full.at(w.name);
    CHECK(group_counts(m, 4).le(2).all().item<bool>());
    // Within each full group the kept are the two largest magnitudes.
    at::Tensor a = at::constant_pad_nd(gemm_rows(w.weight.abs()), {0, (4 - gemm_rows(w.weight).size(1) % 4) % 4}, 0);
    at::Tensor km = at::constant_pad_nd(gemm_rows(m.to(at::kFloat)), {0, (4 - gemm_rows(w.weight).size(1) % 4) % 4}, 0);
    a = a.view({a.size(0), -1, 4});
    km = km.view({km.size(0), -1, 4});
    at::Tensor kept_min = at::where(km.ne(0), a, at::full_like(a, 1e30)).amin(-1);
    at::Tensor pruned_max = at::where(km.eq(0), a, at::full_like(a, -1)).amax(-1);
    CHECK(pruned_max.le(kept_min).all().item<bool>());
    at::Tensor copy = w.weight.clone();
    apply_masks({{w.name, copy}}, full);
    CHECK(measure(copy).two_of_four);
  }
  // 0.25: half of the groups become 2:4, the other half stay dense.
  Masks half = magnitude_masks(weights, 0.25, p, /*global=*/false);
  const at::Tensor counts = group_counts(half.at("a.weight"), 4);
  CHECK(counts.eq(2).sum().item<int64_t>() == counts.numel() / 2);
  CHECK(counts.eq(4).sum().item<int64_t>() == counts.numel() / 2);
}

TEST_CASE("magnitude_masks refuses a sparsity outside 0 to 1, above the N:M limit, and global N:M", "[sparsity]") {
  auto weights = random_weights(5);
  for (double s : {1.0, -0.1, 1.5, std::nan("")})
    CHECK(bad_input_thrown([&] { magnitude_masks(weights, s, parse_pattern("unstructured"), false); }, "outside [0, 1)"));
  CHECK(bad_input_thrown([&] { magnitude_masks(weights, 0.6, parse_pattern("2:4"), false); }, "at most 0.5"));
  CHECK(bad_input_thrown([&] { magnitude_masks(weights, 0.5, parse_pattern("2:4"), true); }, "global"));
  Masks none = magnitude_masks(weights, 0.0, parse_pattern("1x4"), false);
  for (const auto& kv : none) CHECK(kv.second.all().item<bool>());
}

TEST_CASE("layer selection skips the first and last layers and grouped convolutions unless asked", "[sparsity]") {
  Graph g = import_module(testing::sparse_convnet());
  std::vector<std::pair<std::string, std::string>> skipped;
  auto layers = select_layers(g, {}, &skipped);
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.module);
  CHECK(names == std::vector<std::string>{"conv", "expand", "project"});
  REQUIRE(skipped.size() == 3);
  CHECK(skipped[0].first == "stem");
  CHECK(skipped[1].first == "dw");
  CHECK(skipped[1].second.find("depthwise") != std::string::npos);
  CHECK(skipped[2].first == "fc");
  CHECK(layers[0].k == 72);
  CHECK(layers[0].weight == "conv.weight");

  LayerSelection all;
  all.include_first_last = true;
  all.exclude = {"expand"};
  names.clear();
  for (const auto& l : select_layers(g, all)) names.push_back(l.module);
  CHECK(names == std::vector<std::string>{"stem", "conv", "project", "fc"});

  LayerSelection wrong;
  wrong.exclude = {"projct"};
  CHECK(bad_input_thrown([&] { select_layers(g, wrong); }, "did you mean project"));
}

TEST_CASE("masks that do not match the weights are refused, naming the mask", "[sparsity]") {
  auto weights = random_weights(6);
  Masks ok = magnitude_masks(weights, 0.5, parse_pattern("unstructured"), false);
  check_masks(weights, ok);
  Masks shape = ok;
  shape["a.weight"] = at::ones({16, 31}, at::kBool);
  CHECK(bad_input_thrown([&] { check_masks(weights, shape); }, "mask 'a.weight' has shape"));
  Masks name = ok;
  name["a.wieght"] = ok["a.weight"];
  CHECK(bad_input_thrown([&] { check_masks(weights, name); }, "did you mean a.weight"));
  Masks values = ok;
  values["c.weight"] = at::full({5, 10}, 0.5);
  CHECK(bad_input_thrown([&] { check_masks(weights, values); }, "values other than 0 and 1"));
  Masks floats = ok;
  floats["c.weight"] = ok["c.weight"].to(at::kFloat);
  check_masks(weights, floats);
}

TEST_CASE("masks survive a save and load, and a file that is not one is refused", "[sparsity]") {
  TempDir dir("masks");
  auto weights = random_weights(7);
  Masks masks = magnitude_masks(weights, 0.6, parse_pattern("1x4"), true);
  save_masks(masks, dir.file("m.pt"));
  Masks back = load_masks(dir.file("m.pt"));
  REQUIRE(back.size() == masks.size());
  for (const auto& kv : masks) CHECK(at::equal(back.at(kv.first), kv.second));
  {
    std::ofstream f(dir.file("junk.pt"));
    f << "not a pickle";
  }
  CHECK(bad_input_thrown([&] { load_masks(dir.file("junk.pt")); }, "not a mask file"));
  CHECK(bad_input_thrown([&] { load_masks(dir.file("missing.pt")); }, "missing.pt"));
}

TEST_CASE("the AGP schedule follows the cubic ramp, in steps, and holds the target after it", "[sparsity]") {
  AgpSchedule s;
  s.initial_sparsity = 0.1;
  s.final_sparsity = 0.9;
  s.begin_step = 10;
  s.frequency = 5;
  s.updates = 4;
  CHECK(s.end_step() == 30);
  CHECK(s.at(0) == 0.1);
  CHECK(s.at(10) == 0.1);
  const double after_one = 0.9 + (0.1 - 0.9) * std::pow(1.0 - 5.0 / 20.0, 3);
  CHECK(s.at(15) == Approx(after_one));
  CHECK(s.at(19) == Approx(after_one));  // constant between updates
  CHECK(s.at(30) == 0.9);
  CHECK(s.at(1000) == 0.9);
  double prev = 0;
  for (int64_t t = 0; t <= 40; ++t) {
    CHECK(s.at(t) >= prev);
    prev = s.at(t);
    CHECK(s.updates_at(t) == (t >= 10 && t <= 30 && t % 5 == 0));
  }
  // Larger steps early, smaller late (the cubic's point: prune while the network can recover).
  CHECK(s.at(15) - s.at(10) > s.at(30) - s.at(25));
  AgpSchedule o = agp_over(0.8, 100, 0.75, 10);
  CHECK((o.begin_step == 0 && o.updates == 10 && o.frequency == 7 && o.end_step() <= 75));
  CHECK(o.at(o.end_step()) == 0.8);
}

TEST_CASE("the sparsity callback ramps masks while training and leaves the weights exactly sparse", "[sparsity]") {
  torch::jit::Module m = testing::sparse_mlp();
  Graph g = import_module(m);
  auto layers = select_layers(g, {});
  REQUIRE(layers.size() == 2);
  torch::jit::Module trainable = export_module(g);
  train::TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 32;
  cfg.optimizer.lr = 0.05;
  cfg.optimizer.weight_decay = 1e-3;  // moves pruned weights off zero unless the masks are re-applied
  cfg.quiet = true;
  cfg.threads = 1;
  const auto data = testing::mlp_blobs(256, 1);  // 8 steps an epoch
  AgpSchedule schedule = agp_over(0.8, 16, 0.5, 4);  // updates at steps 0, 2, 4, 6, 8
  auto cb = std::make_shared<SparsityCallback>(layers, parse_pattern("1x4"), false, schedule);
  trainable.train();
  train::Trainer t(trainable, cfg);
  t.add_callback(cb);
  t.fit(data);
  CHECK(cb->current_sparsity() == 0.8);
  CHECK(cb->mask_updates() == 4);
  for (const auto& w : module_weights(trainable, layers)) {
    INFO(w.name);
    WeightSparsity s = measure(w.weight);
    const at::Tensor& mask = cb->masks().at(w.name);
    CHECK(at::equal(w.weight.ne(0), mask));  // no kept weight is exactly 0 after training
    const int64_t blocks = w.weight.size(0) * ((w.weight.size(1) + 3) / 4);
    CHECK(s.block_sparsity == Approx(double(std::llround(0.8 * double(blocks))) / double(blocks)));
  }
  // The dense layers were trained too.
  CHECK_FALSE(at::equal(trainable.attr("fc1").toModule().attr("weight").toTensor(), m.attr("fc1").toModule().attr("weight").toTensor()));
}

TEST_CASE("fixed masks stay fixed through fine-tuning", "[sparsity]") {
  Graph g = import_module(testing::sparse_mlp(9));
  LayerSelection all;
  all.include_first_last = true;
  auto layers = select_layers(g, all);
  auto weights = graph_weights(g, layers);
  Masks masks = magnitude_masks(weights, 0.6, parse_pattern("unstructured"), true);
  apply_masks(weights, masks);
  torch::jit::Module trainable = export_module(g);
  AgpSchedule constant;
  constant.initial_sparsity = constant.final_sparsity = 0.6;
  auto cb = std::make_shared<SparsityCallback>(layers, parse_pattern("unstructured"), true, constant);
  cb->set_masks(masks);
  train::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch_size = 32;
  cfg.optimizer.lr = 0.05;
  cfg.quiet = true;
  cfg.threads = 1;
  trainable.train();
  train::Trainer t(trainable, cfg);
  t.add_callback(cb);
  t.fit(testing::mlp_blobs(128, 2));
  CHECK(cb->mask_updates() == 0);
  for (const auto& w : module_weights(trainable, layers)) CHECK(at::equal(w.weight.ne(0), masks.at(w.name)));
}
