// compress prune IN -o OUT (--target-macs F | --ratio F | --ratios FILE) [--input-shape S] [--criterion C]
//                [--global] [--round-to N] [--min-channels N] [--ignore NAME ...] [--report R.json]
//                [--data fashion-mnist --finetune-epochs N]
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/pruning/prune.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "data_option.h"
#include "distributed_option.h"
#include "input_shape.h"

namespace compress::cli {

namespace {

std::map<std::string, double> read_ratios(const std::string& path) {
  require_input_file(path);
  std::ifstream in(path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception&) {
    bad_input(path + ": not valid JSON (expected {\"group name\": ratio, ...})");
  }
  if (!j.is_object() || j.empty()) bad_input(path + ": expected a JSON object {\"group name\": ratio, ...} naming at least one group");
  std::map<std::string, double> ratios;
  for (const auto& kv : j.items()) {
    if (!kv.value().is_number()) bad_input(path + ": the ratio of '" + kv.key() + "' is not a number");
    ratios[kv.key()] = kv.value().get<double>();
  }
  return ratios;
}

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

}  // namespace

int cmd_prune(int argc, char** argv) {
  cxxopts::Options options("compress prune",
                           "Structured pruning: remove whole channels (and everything coupled to them through "
                           "residuals, concatenations, depthwise convolutions, ...) so the model is smaller and faster.");
  options.positional_help("IN -o OUT (--target-macs F | --ratio F | --ratios FILE)");
  add_input_options(options);
  options.add_options()
      ("in", "input TorchScript model", cxxopts::value<std::string>())
      ("o,output", "output model (written atomically; never the input)", cxxopts::value<std::string>())
      ("target-macs", "keep at most this fraction of the MACs, in (0, 1)", cxxopts::value<double>())
      ("ratio", "remove this fraction of the channels of every group, in (0, 1)", cxxopts::value<double>())
      ("ratios", "JSON file {\"group\": ratio, ...} (group names: compress inspect --groups)", cxxopts::value<std::string>())
      ("criterion", "channel importance: l1, l2, bn, fpgm, taylor or attention (need --data), random", cxxopts::value<std::string>()->default_value("l1"))
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
  const int64_t epochs = r["finetune-epochs"].as<int64_t>();
  if (epochs < 0) bad_input("--finetune-epochs must not be negative");
  if (epochs > 0 && data.empty()) bad_input("--finetune-epochs needs --data");
  const int64_t recal = r["recalibrate-bn"].as<int64_t>();
  if (recal < 0) bad_input("--recalibrate-bn must not be negative");
  if (recal > 0 && data.empty()) bad_input("--recalibrate-bn needs --data");
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
  o.criterion = pruning::parse_criterion(r["criterion"].as<std::string>());
  o.global = r.count("global") > 0;
  o.round_to = r["round-to"].as<int64_t>();
  o.min_channels = r["min-channels"].as<int64_t>();
  if (r.count("ignore")) o.ignore = r["ignore"].as<std::vector<std::string>>();
  o.seed = r["seed"].as<uint64_t>();
  at::set_num_threads(r["threads"].as<int>());

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
  pruning::PruneResult result = pruning::prune(graph, o);
  if (recal > 0) {
    if (!train_set) train_set = load_data_option(data, "train", r["data-dir"].as<std::string>());
    if (limit > 0) train_set = data::take(*train_set, limit);
    report["batch_norms_recalibrated"] = pruning::recalibrate_batch_norm(graph, *train_set, recal);
  }
  torch::jit::Module pruned = export_module(graph);
  if (epochs > 0) {
    if (!train_set) train_set = load_data_option(data, "train", r["data-dir"].as<std::string>());
    if (limit > 0) train_set = data::take(*train_set, limit);
    train::TrainConfig cfg;
    cfg.epochs = epochs;
    cfg.seed = o.seed;
    cfg.optimizer.lr = r["lr"].as<double>();
    cfg.optimizer.weight_decay = 5e-4;
    cfg.threads = r["threads"].as<int>();
    cfg.quiet = r.count("quiet") > 0;
    apply_distributed_options(r, group, cfg);
    pruned.train();
    train::Trainer trainer(pruned, cfg);
    trainer.fit(*train_set);
    pruned.eval();
  }
  if (!root) return 0;
  if (test_set) report["accuracy_after"] = train::evaluate(pruned, *test_set).top1;
  save_module(pruned, out, /*protect=*/in);
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
