// compress prune IN -o OUT (--target-macs F | --ratio F | --ratios FILE | --target-latency MS | --target-speedup S)
//                [--input-shape S]
//                [--criterion C] [--global | --latency-aware] [--round-to N] [--min-channels N] [--ignore NAME ...] [--report R.json]
//                [--data fashion-mnist --finetune-epochs N [--distill | --teacher T.pt] [--temperature T] [--alpha A]]
//                [--latency-batch N] [--latency-threads T] [--int8] [--latency-grid G] [--latency-repeats R] [--latency-rounds K]
#include <chrono>
#include <cmath>
#include <map>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/analysis/profile.h"
#include "compress/distillation/distill.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/pruning/iterative.h"
#include "compress/pruning/prune.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "compress/threads.h"
#include "data_option.h"
#include "distributed_option.h"
#include "input_shape.h"
#include "latency_option.h"
#include "ratios_option.h"

namespace compress::cli {

namespace {

// Median latency of the original and the pruned model, 1 thread, FP32, run
// alternately (twice each, best median kept) so both see the same machine,
// on the same synthesised inputs (every input the model takes, at its dtype).
nlohmann::json latency_before_after(const Graph& original, torch::jit::Module& pruned, const std::string& batches,
                                    const std::optional<IntRange>& range) {
  train::LatencyOptions lo;
  lo.batch_sizes.clear();
  for (int64_t b : parse_shape(batches, "--latency")) lo.batch_sizes.push_back(b);
  lo.thread_counts = {1};
  lo.repeats = 5;
  lo.warmup = 2;
  torch::jit::Module before = export_module(original);
  const InputSynthesizer synthesize(original, range);
  const train::LatencyInputs inputs = [&synthesize](int64_t b) {
    std::vector<at::Tensor> x = synthesize(/*seed=*/0, b);
    return std::vector<c10::IValue>(x.begin(), x.end());
  };
  nlohmann::json out;
  std::map<int64_t, double> best_before, best_after;
  for (int round = 0; round < 2; ++round) {
    for (const auto& p : train::measure_latency(before, inputs, lo))
      best_before[p.batch] = round ? std::min(best_before[p.batch], p.median_ms) : p.median_ms;
    for (const auto& p : train::measure_latency(pruned, inputs, lo))
      best_after[p.batch] = round ? std::min(best_after[p.batch], p.median_ms) : p.median_ms;
  }
  for (const auto& kv : best_before) {
    out[std::to_string(kv.first)] = {{"before", kv.second}, {"after", best_after[kv.first]},
                                     {"speedup", kv.second / best_after[kv.first]}};
  }
  return out;
}

const char* const kLatencyOnlyOptions[] = {"int8", "latency-batch", "latency-threads", "latency-grid", "latency-repeats",
                                            "latency-rounds", "latency-table", "save-latency-table"};

// The latency table of --latency-table FILE; its batch size, threads, kernels
// and grid are the budget's, so --latency-batch, --latency-threads, --int8 and
// --latency-grid may only repeat them.
latency::LatencyTable read_latency_table(const std::string& path, const cxxopts::ParseResult& r) {
  require_input_file(path);
  nlohmann::json j;
  try {
    std::ifstream(path) >> j;
  } catch (const std::exception&) {
    bad_input(path + ": not valid JSON (a table --save-latency-table wrote)");
  }
  latency::LatencyTable table = latency::LatencyTable::from_json(j, path);
  const latency::LatencyOptions& t = table.options();
  if (r.count("latency-batch") && r["latency-batch"].as<int64_t>() != t.batch)
    bad_input(path + ": the table is for batch " + std::to_string(t.batch) + ", not --latency-batch " + std::to_string(r["latency-batch"].as<int64_t>()));
  if (r.count("latency-threads") && r["latency-threads"].as<int>() != t.threads)
    bad_input(path + ": the table is for " + std::to_string(t.threads) + " thread(s), not --latency-threads " + std::to_string(r["latency-threads"].as<int>()));
  if (r.count("int8") && !t.int8) bad_input(path + ": the table times FP32 layers, not the INT8 kernels (--int8)");
  if (r.count("latency-grid") && r["latency-grid"].as<int>() != t.grid)
    bad_input(path + ": the table's grid is " + std::to_string(t.grid) + ", not --latency-grid " + std::to_string(r["latency-grid"].as<int>()));
  return table;
}

// --target-latency, --target-speedup or --latency-aware: measures the lookup
// table and the overhead (the unpruned and the smallest model end to end) or
// reads them (--latency-table). A latency budget (--target-speedup S: the
// unpruned model's predicted latency over S, from the same table, so that a
// budget means the same on any machine) is then pruned to on the prediction
// and checked by measurement (pruning::prune_to_latency); a MACs budget with
// the latency-aware ranking is pruned on the prediction and the result
// measured once. Fills `report`.
pruning::PruneResult prune_to_measured_latency(Graph& graph, pruning::PruneOptions o, const cxxopts::ParseResult& r,
                                               const data::TensorDataset* data, nlohmann::json& report) {
  std::optional<latency::LatencyTable> loaded;
  if (r.count("latency-table")) loaded = read_latency_table(r["latency-table"].as<std::string>(), r);
  latency::LatencyOptions lo;
  lo.batch = r["latency-batch"].as<int64_t>();
  lo.threads = r["latency-threads"].as<int>();
  lo.int8 = r.count("int8") > 0;
  lo.grid = r["latency-grid"].as<int>();
  if (loaded) lo = loaded->options();
  lo.repeats = r["latency-repeats"].as<int>();
  lo.rounds = r["latency-rounds"].as<int>();
  const bool quiet = r.count("quiet") > 0;
  // INT8 calibration: two batches of --data when given, else of random inputs (only the timing matters).
  Shape calib_shape = graph.example_inputs().at(0).shape;
  calib_shape[0] = 8;
  const quant::CalibrationData calibration{2, [&](int64_t i) {
    if (data && data->size() >= 16) return data->inputs.narrow(0, i * 8, 8);
    return at::rand(calib_shape);
  }};
  auto measure = [&](const Graph& g) { return end_to_end_ms(g, lo.int8, calibration, lo, lo.repeats); };

  std::vector<latency::LayerShape> layers = latency::latency_layers(graph);
  if (layers.empty()) {
    bad_input(std::string(o.target_latency_ms ? "--target-latency" : o.target_speedup ? "--target-speedup" : "--latency-aware") +
              ": the model has no measurable layer (2-d convolution or linear)");
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<double> unpruned_ms, smallest_ms;
  latency::LatencyTable table;
  if (loaded) {
    table = *loaded;
  } else {
    table = latency::LatencyTable::measure(layers, lo);
    unpruned_ms = measure(graph);
    const double overhead = std::max(0.0, *unpruned_ms - table.layers_ms_at_full_width());
    table.set_overhead_ms(overhead);
    // The overhead's other end: every prunable group at its minimum, measured.
    Graph smallest = graph;
    pruning::PruneOptions least = o;
    least.target_latency_ms.reset();
    least.target_speedup.reset();
    least.target_macs.reset();
    least.latency_aware = false;
    least.ratio = 0.99;  // the largest fraction a budget search tries
    least.latency = &table;
    const pruning::PruneResult least_result = pruning::prune(smallest, least);
    smallest_ms = measure(smallest);
    const double smallest_layers = least_result.predicted_ms_after - overhead;
    table.set_overhead_ms(overhead, std::max(0.0, *smallest_ms - smallest_layers));
  }
  const double table_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!quiet && loaded) {
    std::cout << "latency table: " << layers.size() << " layers, batch " << lo.batch << ", " << lo.threads << " thread(s), "
              << (lo.int8 ? "INT8" : "FP32") << ", read from " << r["latency-table"].as<std::string>() << std::endl;
  } else if (!quiet) {
    std::cout << "latency table: " << layers.size() << " layers, batch " << lo.batch << ", " << lo.threads << " thread(s), "
              << (lo.int8 ? "INT8" : "FP32") << ", " << table_seconds << " s; measured end to end: unpruned " << *unpruned_ms
              << " ms (layers " << table.layers_ms_at_full_width() << " ms), every group at its minimum " << *smallest_ms
              << " ms" << std::endl;
  }

  o.latency = &table;
  const nlohmann::json table_facts{{"table_read", loaded.has_value()}, {"batch", lo.batch}, {"threads", lo.threads},
                                   {"int8", lo.int8}, {"table_seconds", table_seconds}};
  if (!o.target_latency_ms && !o.target_speedup) {
    // The latency-aware ranking under a MACs budget: the table only steers
    // the widths; the pruned model is measured once, beside the unpruned one.
    const Graph original = graph;
    pruning::PruneResult result = pruning::prune(graph, o);
    const double pruned_ms = measure(graph), unpruned_again_ms = measure(original);
    const double unpruned_best_ms = std::min(unpruned_ms.value_or(unpruned_again_ms), unpruned_again_ms);
    if (!quiet) {
      std::cout << "latency-aware ranking: predicted " << result.predicted_ms_before << " -> " << result.predicted_ms_after
                << " ms (" << result.predicted_ms_before / result.predicted_ms_after << "x), measured " << unpruned_best_ms
                << " -> " << pruned_ms << " ms (" << unpruned_best_ms / pruned_ms << "x), batch " << lo.batch << ", "
                << lo.threads << " thread(s)" << std::endl;
    }
    report["latency_aware"] = {{"predicted_ms", result.predicted_ms_after},
                               {"measured_ms", pruned_ms},
                               {"unpruned_predicted_ms", result.predicted_ms_before},
                               {"unpruned_measured_ms", unpruned_best_ms},
                               {"measured_speedup", unpruned_best_ms / pruned_ms},
                               {"predicted_speedup", result.predicted_ms_before / result.predicted_ms_after}};
    report["latency_aware"].update(table_facts);
    report["latency_table"] = table.to_json();
    return result;
  }
  const double tolerance = 0.05;
  const Graph original = graph;
  pruning::PruneResult result = pruning::prune_to_latency(graph, o, measure, tolerance, 4);
  // The unpruned model once more, after the pruned ones: the speed-up uses
  // the smaller of its two measurements, which bracket the pruned ones in time.
  const double unpruned_again_ms = measure(original);
  const double unpruned_best_ms = std::min(unpruned_ms.value_or(unpruned_again_ms), unpruned_again_ms);
  const double target = result.latency_budget_ms;
  if (!quiet) {
    for (size_t k = 0; k < result.latency_attempts.size(); ++k) {
      const pruning::LatencyAttempt& t = result.latency_attempts[k];
      std::cout << "try " << k + 1 << ": predicted budget " << t.budget_ms << " ms -> ratio " << t.ratio << ", predicted "
                << t.predicted_ms << " ms, measured " << t.measured_ms << " ms"
                << (t.measured_ms > target * (1 + tolerance) ? " (over the budget by more than 5%)" : "") << "\n";
    }
    if (result.latency_attempts.size() > 1 || !result.latency_met)
      std::cout << (result.latency_met ? "met the budget after tightening the predicted budget\n"
                                       : "the measured latency stays above the budget: kept the fastest try\n");
    std::cout << "latency: budget " << target << " ms"
              << (o.target_speedup ? " (the unpruned prediction over --target-speedup " + c10::str(*o.target_speedup) + ")" : "")
              << ", predicted " << result.predicted_ms_after << " ms, measured "
              << result.measured_ms << " ms; unpruned measured " << unpruned_best_ms << " ms (speed-up "
              << unpruned_best_ms / result.measured_ms << "x measured, " << result.predicted_ms_before / result.predicted_ms_after
              << "x predicted)" << std::endl;
  }
  report["latency_budget"] = {{"target_ms", target},
                              {"predicted_ms", result.predicted_ms_after},
                              {"measured_ms", result.measured_ms},
                              {"met", result.latency_met},
                              {"tolerance", tolerance},
                              {"unpruned_predicted_ms", result.predicted_ms_before},
                              {"unpruned_measured_ms", unpruned_best_ms},
                              {"unpruned_measurements_ms", unpruned_ms ? std::vector<double>{*unpruned_ms, unpruned_again_ms}
                                                                       : std::vector<double>{unpruned_again_ms}},
                              {"measured_speedup", unpruned_best_ms / result.measured_ms},
                              {"predicted_speedup", result.predicted_ms_before / result.predicted_ms_after},
                              {"smallest_predicted_ms", result.predicted_ms_smallest},
                              {"smallest_measured_ms", smallest_ms ? nlohmann::json(*smallest_ms) : nlohmann::json()}};
  if (o.target_speedup) report["latency_budget"]["target_speedup"] = *o.target_speedup;
  report["latency_budget"].update(table_facts);
  report["latency_table"] = table.to_json();
  return result;
}

}  // namespace

int cmd_prune(int argc, char** argv) {
  cxxopts::Options options("compress prune",
                           "Structured pruning: remove whole channels (and everything coupled to them through "
                           "residuals, concatenations, depthwise convolutions, ...) so the model is smaller and faster.");
  options.positional_help("IN -o OUT (--target-macs F | --ratio F | --ratios FILE | --target-latency MS | --target-speedup S)");
  add_input_options(options);
  options.add_options()
      ("in", "input TorchScript model", cxxopts::value<std::string>())
      ("o,output", "output model (written atomically; never the input)", cxxopts::value<std::string>())
      ("target-macs", "keep at most this fraction of the MACs, in (0, 1)", cxxopts::value<double>())
      ("ratio", "remove this fraction of the channels of every group, in (0, 1)", cxxopts::value<double>())
      ("ratios", "JSON file {\"group\": ratio, ...} (group names: compress inspect --groups)", cxxopts::value<std::string>())
      ("target-latency", "keep the latency at most this many ms: predicted from per-layer times measured here, "
       "then checked end to end (and tightened when slower)", cxxopts::value<double>())
      ("target-speedup", "keep the latency at most 1/S of the unpruned model's (S > 1), predicted and checked as "
       "--target-latency is: a budget that means the same on any machine", cxxopts::value<double>())
      ("latency-batch", "batch size of the latency budget", cxxopts::value<int64_t>()->default_value("1"))
      ("latency-threads", "threads of the latency budget", cxxopts::value<int>()->default_value("1"))
      ("int8", "the latency budget is for the INT8 kernels (the model written stays FP32: compress quantize it)")
      ("latency-grid", "latency table: kept fractions 1/G, 2/G, ..., 1 of each layer's input and output",
       cxxopts::value<int>()->default_value("8"))
      ("latency-repeats", "timed calls per table entry and per end-to-end measurement (median)",
       cxxopts::value<int>()->default_value("7"))
      ("latency-rounds", "sweeps over the table and end-to-end measurements (the smallest median kept)",
       cxxopts::value<int>()->default_value("3"))
      ("save-latency-table", "write the measured table (with its overhead) here, for --latency-table", cxxopts::value<std::string>())
      ("latency-table", "read the table instead of measuring it (the same model, as --save-latency-table wrote it)",
       cxxopts::value<std::string>())
      ("criterion", "channel importance: l1, l2, bn, fpgm, taylor or attention (need --data), random", cxxopts::value<std::string>()->default_value("l1"))
      ("latency-aware", "with --target-macs or --target-latency: shrink the groups whose channels lose the least "
       "importance per ms saved (predicted by the latency table: --latency-table, or measured with the --latency-* "
       "options), instead of one ratio everywhere")
      ("max-group-ratio", "with --latency-aware: remove at most this fraction of any group, in (0, 0.99]",
       cxxopts::value<double>()->default_value("0.5"))
      ("global", "rank channels across groups instead of within each")
      ("round-to", "keep widths at multiples of N", cxxopts::value<int64_t>()->default_value("1"))
      ("min-channels", "no group below N channels", cxxopts::value<int64_t>()->default_value("1"))
      ("ignore", "group or layer to leave alone (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("seed", "seed for --criterion random and fine-tuning", cxxopts::value<uint64_t>()->default_value("0"))
      ("report", "write a JSON report here", cxxopts::value<std::string>())
      ("latency", "measure latency before and after (1 thread, FP32) at these batch sizes, e.g. 1,32",
       cxxopts::value<std::string>())
      ("recalibrate-bn", "re-estimate batch-norm statistics of the pruned model on N batches of --data (no training)",
       cxxopts::value<int64_t>()->default_value("0"))
      ("data", "fashion-mnist or a tensor dataset (.pt): evaluate before/after and fine-tune", cxxopts::value<std::string>()->default_value(""))
      ("data-dir", "folder of the Fashion-MNIST files", cxxopts::value<std::string>()->default_value(""))
      ("finetune-epochs", "fine-tune this many epochs after pruning (needs --data)", cxxopts::value<int64_t>()->default_value("0"))
      ("lr", "fine-tuning learning rate (SGD, cosine)", cxxopts::value<double>()->default_value("0.01"))
      ("iterative-steps", "with --target-macs: prune in N steps, each removing the same fraction of the MACs left, "
       "each followed by batch-norm re-estimation and --finetune-epochs / N epochs", cxxopts::value<int64_t>()->default_value("1"))
      ("distill", "fine-tune with knowledge distillation from the unpruned input model (needs --finetune-epochs)")
      ("teacher", "distil from this model instead of the unpruned input (implies --distill)", cxxopts::value<std::string>())
      ("temperature", "distillation: KD softmax temperature, > 0", cxxopts::value<double>()->default_value("4"))
      ("alpha", "distillation: KD weight against cross-entropy, in [0, 1]", cxxopts::value<double>()->default_value("0.9"))
      ("limit", "use at most N training and N test samples (quick runs)", cxxopts::value<int64_t>()->default_value("0"))
      ("threads", "threads", cxxopts::value<int>()->default_value("2"))
      ("q,quiet", "print nothing on success")
      ("h,help", "show this help");
  add_distributed_options(options);
  options.parse_positional({"in"});
  auto r = parse_args(options, argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!r.count("in")) bad_input("no input model given (usage: compress prune IN -o OUT --target-macs 0.5)");
  if (!r.count("output")) bad_input("no output file given (-o OUT)");
  const std::string in = r["in"].as<std::string>(), out = r["output"].as<std::string>();
  const std::string data = r["data"].as<std::string>();
  const bool latency_budget = r.count("target-latency") || r.count("target-speedup");
  if (r.count("target-macs") + r.count("ratio") + r.count("ratios") + r.count("target-latency") + r.count("target-speedup") != 1)
    bad_input("give exactly one budget: --target-macs, --ratio, --ratios, --target-latency or --target-speedup");
  for (const char* opt : {"report", "save-latency-table"})
    if (r.count(opt) && same_file(r[opt].as<std::string>(), in)) bad_input(std::string("--") + opt + " would overwrite the input model");
  if (r.count("latency-table") && r.count("save-latency-table"))
    bad_input("--latency-table reads a table, --save-latency-table writes a measured one: give one");
  const bool latency_aware = r.count("latency-aware") > 0;
  if (latency_aware && !r.count("target-macs") && !latency_budget)
    bad_input("--latency-aware chooses widths for a budget: give --target-macs, --target-latency or --target-speedup, "
              "not --ratio or --ratios");
  if (r.count("max-group-ratio") && !latency_aware) bad_input("--max-group-ratio only applies to --latency-aware");
  if (r.count("target-latency") && !(r["target-latency"].as<double>() > 0))
    bad_input("--target-latency must be a positive number of ms, got " + std::to_string(r["target-latency"].as<double>()));
  if (r.count("target-speedup") && !(r["target-speedup"].as<double>() > 1 && std::isfinite(r["target-speedup"].as<double>())))
    bad_input("--target-speedup must be a number above 1 (1.5: 1.5 times faster), got " +
              std::to_string(r["target-speedup"].as<double>()));
  if (latency_budget || latency_aware) {
    for (const char* opt : {"latency-grid", "latency-repeats", "latency-rounds", "latency-threads"})
      if (r[opt].as<int>() < 1) bad_input(std::string("--") + opt + " must be at least 1");
    if (r["latency-batch"].as<int64_t>() < 1) bad_input("--latency-batch must be at least 1");
  } else {
    for (const char* opt : kLatencyOnlyOptions)
      if (r.count(opt)) bad_input(std::string("--") + opt + " only applies to --target-latency, --target-speedup or --latency-aware");
  }
  const int64_t epochs = r["finetune-epochs"].as<int64_t>();
  if (epochs < 0) bad_input("--finetune-epochs must not be negative");
  if (epochs > 0 && data.empty()) bad_input("--finetune-epochs needs --data");
  const int64_t recal = r["recalibrate-bn"].as<int64_t>();
  if (recal < 0) bad_input("--recalibrate-bn must not be negative");
  if (recal > 0 && data.empty()) bad_input("--recalibrate-bn needs --data");
  const int64_t steps = r["iterative-steps"].as<int64_t>();
  if (steps < 1) bad_input("--iterative-steps must be at least 1, got " + std::to_string(steps));
  if (steps > 1) {
    if (!r.count("target-macs") || latency_aware)
      bad_input("--iterative-steps splits a --target-macs budget into steps: give --target-macs (without --latency-aware)");
    if (epochs == 0 || epochs % steps != 0)
      bad_input("--iterative-steps " + std::to_string(steps) + " fine-tunes after every step: --finetune-epochs must be a " +
                "positive multiple of it, got " + std::to_string(epochs));
  }
  const bool distill = r.count("distill") || r.count("teacher");
  distillation::DistillOptions distill_options;  // KD on the logits
  if (distill) {
    if (epochs == 0) bad_input("--distill fine-tunes the pruned model under a teacher: it needs --finetune-epochs");
    if (r.count("teacher")) {
      require_input_file(r["teacher"].as<std::string>());
      if (same_file(r["teacher"].as<std::string>(), out)) bad_input("-o " + out + " would overwrite the --teacher model");
    }
    distill_options.temperature = r["temperature"].as<double>();
    distill_options.alpha = r["alpha"].as<double>();
    if (!(distill_options.temperature > 0) || !std::isfinite(distill_options.temperature))
      bad_input("--temperature must be a positive number, got " + std::to_string(distill_options.temperature));
    if (!(distill_options.alpha >= 0 && distill_options.alpha <= 1))
      bad_input("--alpha must be in [0, 1], got " + std::to_string(distill_options.alpha));
    distill_options.validate();
  } else if (r.count("temperature") || r.count("alpha")) {
    bad_input("--temperature and --alpha only apply to --distill (or --teacher)");
  }
  if (r.count("nproc") && epochs == 0) bad_input("--nproc parallelises fine-tuning: it needs --finetune-epochs");
  if (auto code = launch_workers(r, argc, argv)) return *code;
  // Every rank prunes alike (the same input and options); the fine-tuning is
  // data-parallel; rank 0 alone writes the model and the report.
  std::shared_ptr<train::ProcessGroup> group = join_job(r);
  const bool root = !group || group->rank() == 0;

  pruning::PruneOptions o;
  if (r.count("target-macs")) o.target_macs = r["target-macs"].as<double>();
  if (r.count("ratio")) o.ratio = r["ratio"].as<double>();
  if (r.count("ratios")) o.ratios = read_ratios(r["ratios"].as<std::string>());
  if (r.count("target-latency")) o.target_latency_ms = r["target-latency"].as<double>();
  if (r.count("target-speedup")) o.target_speedup = r["target-speedup"].as<double>();
  o.criterion = pruning::parse_criterion(r["criterion"].as<std::string>());
  o.global = r.count("global") > 0;
  o.latency_aware = latency_aware;
  o.max_group_ratio = r["max-group-ratio"].as<double>();
  o.round_to = r["round-to"].as<int64_t>();
  o.min_channels = r["min-channels"].as<int64_t>();
  if (r.count("ignore")) o.ignore = r["ignore"].as<std::vector<std::string>>();
  o.seed = r["seed"].as<uint64_t>();
  compress::set_num_threads(r["threads"].as<int>());

  torch::jit::Module module = load_module(in);
  Graph graph = import_module(module);
  apply_input_shapes(graph, r, in, /*required=*/true);

  std::optional<data::TensorDataset> train_set, test_set;
  const int64_t limit = r["limit"].as<int64_t>();
  if (!data.empty()) {
    test_set = load_data_option(data, "test", r["data-dir"].as<std::string>());
    if (limit > 0) test_set = data::take(*test_set, limit);
  }
  nlohmann::json report;
  if (test_set) {
    module.eval();
    report["accuracy_before"] = train::evaluate(module, *test_set).top1;
  }

  if (o.criterion == pruning::Criterion::Taylor || o.criterion == pruning::Criterion::Attention) {
    if (data.empty()) bad_input(std::string("--criterion ") + pruning::criterion_name(o.criterion) + " needs --data");
    train_set = load_data_option(data, "train", r["data-dir"].as<std::string>());
    if (limit > 0) train_set = data::take(*train_set, limit);
    o.data = &*train_set;
  }
  // The unpruned graph, kept only when its latency is to be measured (a deep copy of the weights).
  std::optional<Graph> original;
  if (r.count("latency")) original = graph;
  auto training_set = [&]() -> const data::TensorDataset& {
    if (!train_set) {
      train_set = load_data_option(data, "train", r["data-dir"].as<std::string>());
      if (limit > 0) train_set = data::take(*train_set, limit);
    }
    return *train_set;
  };
  // Fine-tunes `graph` for `n` epochs, plainly or under the teacher, and
  // returns the trained model (eval mode); `graph` gets its weights when
  // another pruning step follows.
  auto fine_tune = [&](Graph& g, int64_t n, bool update_graph) {
    train::TrainConfig cfg;
    cfg.epochs = n;
    cfg.seed = o.seed;
    cfg.optimizer.lr = r["lr"].as<double>();
    cfg.optimizer.weight_decay = 5e-4;
    cfg.threads = r["threads"].as<int>();
    cfg.quiet = r.count("quiet") > 0;
    apply_distributed_options(r, group, cfg);
    const data::TensorDataset& train = training_set();
    if (distill) {
      // The teacher is loaded afresh: the unpruned weights and batch-norm
      // statistics exactly as saved, whatever pruning and re-estimation did.
      const std::string teacher_path = r.count("teacher") ? r["teacher"].as<std::string>() : in;
      const std::vector<int64_t> sample(train.inputs.sizes().begin() + 1, train.inputs.sizes().end());
      distillation::Distiller distiller(load_module(teacher_path), g, distill_options, sample);
      const distillation::DistillResult d = distiller.fit(train, cfg);
      const distillation::EpochTerms last = d.terms.empty() ? distillation::EpochTerms{} : d.terms.back();
      report["distill"] = {{"teacher", teacher_path},
                           {"temperature", distill_options.temperature},
                           {"alpha", distill_options.alpha},
                           {"teacher_cached", d.teacher_cached},
                           {"last_epoch_kd", last.kd},
                           {"last_epoch_cross_entropy", last.cross_entropy}};
      if (update_graph) g = distiller.student();
      return distiller.student_module();
    }
    torch::jit::Module m = export_module(g);
    m.train();
    train::Trainer trainer(m, cfg);
    trainer.fit(train);
    m.eval();
    if (update_graph) update_from_module(g, m);
    return m;
  };
  // One step, or --iterative-steps N (pruning::prune_iteratively): each step
  // removes the same fraction of the MACs left, re-estimates the batch norms
  // and fine-tunes epochs / N epochs.
  pruning::IterativeOptions iterative;
  iterative.steps = steps;
  // INT8 latency calibration reads the data loaded so far (train split for the criterion, else test split).
  const data::TensorDataset* latency_data = train_set ? &*train_set : test_set ? &*test_set : nullptr;
  if (recal > 0) {
    iterative.recalibrate_batches = recal;
    iterative.recalibration_data = &training_set();
  }
  if (latency_budget || o.latency_aware) {
    iterative.prune_step = [&](Graph& g, const pruning::PruneOptions& step_options) {
      return prune_to_measured_latency(g, step_options, r, latency_data, report);
    };
  }
  torch::jit::Module pruned;
  if (epochs > 0) {
    iterative.fine_tune = [&](Graph& g, int64_t step, int64_t n) { pruned = fine_tune(g, epochs / n, step < n); };
  }
  const pruning::IterativeResult run = pruning::prune_iteratively(graph, o, iterative);
  const pruning::PruneResult& result = run.result;
  if (epochs == 0) pruned = export_module(graph);
  if (recal > 0) report["batch_norms_recalibrated"] = run.batch_norms_recalibrated;
  if (steps > 1) {
    for (const pruning::IterativeStep& s : run.steps) {
      nlohmann::json j = s.to_json();
      j["finetune_epochs"] = epochs / steps;
      report["iterative_steps"].push_back(j);
    }
  }
  if (!root) return 0;
  if (test_set) report["accuracy_after"] = train::evaluate(pruned, *test_set).top1;
  save_module(pruned, out, /*protect=*/in);
  if (r.count("save-latency-table") && report.contains("latency_table"))
    write_text_file(r["save-latency-table"].as<std::string>(), report["latency_table"].dump() + "\n");
  report["file_bytes"] = {{"before", std::filesystem::file_size(in)}, {"after", std::filesystem::file_size(out)}};
  if (r.count("latency")) report["latency_ms"] = latency_before_after(*original, pruned, r["latency"].as<std::string>(),
                                                                parse_input_range(r));

  report["options"] = o.to_json();
  report["result"] = result.to_json();
  report["finetune_epochs"] = epochs;
  if (r.count("report")) {
    if (r["report"].as<std::string>() == in) bad_input("--report would overwrite the input model");
    write_text_file(r["report"].as<std::string>(), report.dump(2) + "\n");
  }
  if (!r.count("quiet")) {
    std::cout << "wrote " << out << ": MACs " << result.macs_before << " -> " << result.macs_after << " ("
              << (100.0 * result.macs_after / std::max<int64_t>(1, result.macs_before)) << "%), parameters "
              << result.params_before << " -> " << result.params_after << ", " << result.changes.size()
              << " groups pruned, " << result.frozen.size() << " frozen\n";
    for (const auto& f : result.frozen) std::cout << "  frozen: " << f << "\n";
    if (report.contains("latency_ms"))
      for (const auto& kv : report["latency_ms"].items())
        std::cout << "latency batch " << kv.key() << ", 1 thread: " << kv.value()["before"].get<double>() << " ms -> "
                  << kv.value()["after"].get<double>() << " ms (" << kv.value()["speedup"].get<double>() << "x)\n";
    if (report.contains("accuracy_before"))
      std::cout << "top-1 " << report["accuracy_before"].get<double>() << " -> " << report["accuracy_after"].get<double>() << "\n";
    std::cout << std::flush;
  }
  return 0;
}

}  // namespace compress::cli
