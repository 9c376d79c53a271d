// How long the IR's bookkeeping takes on a big model: import (nodes,
// use-lists, names), shape inference (first, then after a local edit),
// lint, export, and structured pruning to half the MACs (groups; the whole prune). Median of --reps runs, one thread.
//   ./build/bin/compress_bench_ir MODEL.pt --input-shape 1,3,224,224 [--reps 5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "compress/analysis/profile.h"
#include "compress/io.h"
#include "compress/ir/builder.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/pruning/prune.h"

using namespace compress;
using Clock = std::chrono::steady_clock;

namespace {

// Median of `reps` calls; a call that returns a duration (ms) is timed by it.
template <typename F>
double median_ms(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto start = Clock::now();
    if constexpr (std::is_same_v<decltype(f()), double>) {
      t.push_back(f());
    } else {
      f();
      t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::string(argv[2]) != "--input-shape") {
    std::fprintf(stderr, "usage: compress_bench_ir MODEL.pt --input-shape 1,3,224,224 [--reps N]\n");
    return 2;
  }
  int reps = argc >= 6 && std::string(argv[4]) == "--reps" ? std::max(1, std::atoi(argv[5])) : 5;
  at::set_num_threads(1);
  torch::jit::Module module = load_module(argv[1]);
  Shape shape = parse_shape(argv[3], "--input-shape");

  Graph g;
  double import_ms = median_ms(reps, [&] { g = import_module(module); });
  g.set_example_inputs({InputSpec{shape}});
  double shapes_ms = median_ms(reps, [&] {
    g.set_example_inputs({InputSpec{shape}});  // drops every cached result
    g.infer_shapes();
  });
  g.infer_shapes();
  // A local edit: a multiply after the first convolution; only what follows
  // the edit point with changed inputs reruns (here: nothing's shape changes).
  Node* first = nullptr;
  for (Node& n : g.nodes())
    if (n.is_leaf()) {
      first = &n;
      break;
    }
  int edits = 0;
  double edit_ms = median_ms(reps, [&] {
    auto at = g.inserting_after(first);
    ValueId y = add_op(g, "aten::mul", {Arg::of_value(first->output()), Arg::of_constant(1.0)},
                       OpOptions{std::nullopt, "bench:mul" + std::to_string(edits++)});
    g.infer_shapes();
    g.erase(g.producer(y));
  });
  double lint_ms = median_ms(reps, [&] { g.lint(); });
  double export_ms = median_ms(reps, [&] { export_module(g); });
  // Structured pruning to half the MACs: group analysis, scores, budget search, removal.
  double groups_ms = median_ms(reps, [&] { pruning::analyze_groups(g); });
  double prune_ms = median_ms(reps, [&] {
    Graph copy = import_module(module);  // a fresh graph (not timed apart: the import is in its own column)
    copy.set_example_inputs({InputSpec{shape}});
    auto start = Clock::now();
    pruning::PruneOptions o;
    o.target_macs = 0.5;
    pruning::prune(copy, o);
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  });
  std::printf("| %s | %zu | %zu | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", argv[1], g.num_nodes(),
              g.num_values(), import_ms, shapes_ms, edit_ms, lint_ms, export_ms, groups_ms, prune_ms);
  return 0;
}
