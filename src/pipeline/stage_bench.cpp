// bench: latency of every model of the pipeline so far, measured side by
// side (round-robin, best median of each kept) so all see the same machine.
#include <map>
#include <optional>

#include "compress/analysis/inputs.h"
#include "compress/io.h"
#include "compress/train/latency_compare.h"
#include "stage_util.h"

namespace compress::pipeline {

namespace {

class BenchStage : public Stage {
 public:
  std::vector<int64_t> batches{1, 32};
  std::vector<int64_t> threads{1};
  int64_t repeats = 20, warmup = 5, rounds = 2;

  bool makes_model() const override { return false; }
  nlohmann::json options() const override {
    return {{"batches", batches}, {"threads", threads}, {"repeats", repeats}, {"warmup", warmup}, {"rounds", rounds}};
  }

  void run(StageContext& ctx) override {
    train::LatencyOptions lo;
    lo.batch_sizes = batches;
    lo.thread_counts.assign(threads.begin(), threads.end());
    lo.repeats = int(repeats);
    lo.warmup = int(warmup);
    std::vector<torch::jit::Module> models;
    for (const auto& path : ctx.row_models) models.push_back(load_module(path));
    // Float inputs: uniform [0, 1), as pixels. Integer inputs (token ids):
    // values valid for the first (float) model's embeddings, which later
    // stages keep; every model runs on the same ones.
    std::optional<InputSynthesizer> ids;
    if (!at::isFloatingType(ctx.sample_dtype))
      ids.emplace(load_graph(ctx.row_models.at(0), ctx.sample_shape, ctx.sample_dtype));
    const train::LatencyInputs inputs = [&](int64_t b) {
      if (ids) return std::vector<c10::IValue>{(*ids)(/*seed=*/0, b).at(0)};
      std::vector<int64_t> shape{b};
      shape.insert(shape.end(), ctx.sample_shape.begin(), ctx.sample_shape.end());
      return std::vector<c10::IValue>{at::rand(shape).to(ctx.sample_dtype)};
    };
    const train::SideBySideLatency best = train::compare_latency(models, inputs, lo, rounds);
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < models.size(); ++i) {
      nlohmann::json lat = nlohmann::json::object();
      for (const auto& t : best[i])
        for (const auto& b : t.second) lat[std::to_string(t.first)][std::to_string(b.first)] = b.second;
      rows.push_back({{"row", ctx.row_names[i]}, {"latency_ms", lat}});
    }
    ctx.details["rows"] = rows;
  }
};

}  // namespace

std::unique_ptr<Stage> parse_bench_stage(Fields& f, const ParseInfo&) {
  auto s = std::make_unique<BenchStage>();
  s->batches = f.integers("batches", {1, 32}, 1);
  s->threads = f.integers("threads", {1}, 1);
  s->repeats = f.integer("repeats", 20, 1, 100000);
  s->warmup = f.integer("warmup", 5, 0, 100000);
  s->rounds = f.integer("rounds", 2, 1, 100);
  return s;
}

}  // namespace compress::pipeline
