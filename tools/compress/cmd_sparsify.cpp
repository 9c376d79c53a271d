// compress sparsify IN -o OUT --sparsity F [--pattern unstructured|1x4|2:4] [--global] [--include-first-last]
//   [--exclude NAME ...] [--masks FILE] [--save-masks FILE]
//   [--data fashion-mnist|FILE --finetune-epochs N --schedule agp|oneshot] [--report R.json]
//   [--input-shape S --input-dtype T]
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <numeric>
#include <optional>

#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "distributed_option.h"
#include "parse_args.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/pruning/sparsity.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "compress/threads.h"
#include "data_option.h"
#include "format.h"
#include "input_shape.h"

namespace compress::cli {

namespace {

struct SparsifyPlan {
  double sparsity = 0;
  sparsity::Pattern pattern;
  std::string schedule;  // "agp" or "oneshot"
  int64_t epochs = 0;
};

// Every option a user can get wrong, checked before the model is loaded.
SparsifyPlan check_options(const cxxopts::ParseResult& r) {
  SparsifyPlan p;
  p.pattern = sparsity::parse_pattern(r["pattern"].as<std::string>());
  const bool given_masks = r.count("masks") > 0;
  if (given_masks && r.count("sparsity")) bad_input("--masks and --sparsity exclude each other (the masks set the sparsity)");
  if (given_masks && r.count("global")) bad_input("--global ranks weights to make masks: it does not apply to --masks");
  if (!given_masks && !r.count("sparsity") && p.pattern.kind != sparsity::PatternKind::NofM)
    bad_input("--sparsity F is required (the fraction of weights to prune, in [0, 1))");
  // With --masks the masks decide (the value only labels the fine-tuning schedule).
  p.sparsity = r.count("sparsity") ? r["sparsity"].as<double>() : given_masks ? 0.0 : p.pattern.max_sparsity();
  sparsity::check_sparsity(p.sparsity, p.pattern, r.count("global") > 0);
  p.epochs = r["finetune-epochs"].as<int64_t>();
  if (p.epochs < 0) bad_input("--finetune-epochs must not be negative");
  if (p.epochs > 0 && r["data"].as<std::string>().empty()) bad_input("--finetune-epochs needs --data");
  p.schedule = r.count("schedule") ? r["schedule"].as<std::string>() : (p.epochs > 0 && !given_masks ? "agp" : "oneshot");
  if (p.schedule != "agp" && p.schedule != "oneshot")
    bad_input("--schedule " + p.schedule + ": unknown schedule (agp or oneshot)");
  if (p.schedule == "agp" && p.epochs == 0)
    bad_input("--schedule agp prunes gradually while fine-tuning: it needs --data and --finetune-epochs");
  if (p.schedule == "agp" && given_masks) bad_input("--schedule agp computes its own masks: it does not apply to --masks");
  const double ramp = r["ramp"].as<double>();
  if (!(ramp > 0 && ramp <= 1)) bad_input("--ramp must be in (0, 1]");
  if (r["mask-updates"].as<int64_t>() < 1) bad_input("--mask-updates must be at least 1");
  if (r["threads"].as<int>() < 1) bad_input("--threads must be at least 1");
  if (r["batch-size"].as<int64_t>() < 1) bad_input("--batch-size must be at least 1");
  const std::string in = r["in"].as<std::string>();
  for (const char* opt : {"report", "save-masks"})
    if (r.count(opt) && same_file(r[opt].as<std::string>(), in))
      bad_input("--" + std::string(opt) + " would overwrite the input model");
  if (same_file(r["output"].as<std::string>(), in)) bad_input("-o " + r["output"].as<std::string>() + " would overwrite the input model");
  return p;
}

// How far the sparse model's output moved from the dense one's on the same
// synthesised inputs: max |sparse - dense| / max |dense| (no data needed).
double output_change(torch::jit::Module& dense, torch::jit::Module& sparse, const Graph& graph,
                     const std::optional<IntRange>& range) {
  const std::vector<at::Tensor> inputs = synthesize_inputs(graph, /*seed=*/0, range);
  const std::vector<c10::IValue> x(inputs.begin(), inputs.end());
  torch::NoGradGuard no_grad;
  dense.eval();
  sparse.eval();
  const at::Tensor a = train::logits_of(dense.forward(x)).to(at::kDouble);
  const at::Tensor b = train::logits_of(sparse.forward(x)).to(at::kDouble);
  const double ref = a.abs().max().item<double>(), diff = (a - b).abs().max().item<double>();
  return ref > 0 ? diff / ref : diff;
}

}  // namespace

int cmd_sparsify(int argc, char** argv) {
  cxxopts::Options options("compress sparsify",
                           "Fine-grained sparsity: zero the smallest conv/linear weights (unstructured, 1x4 blocks "
                           "or N:M groups along the input dimension), one-shot or gradually (AGP) while fine-tuning. "
                           "The saved float model is exactly sparse; compress quantize then packs it for the sparse "
                           "INT8 kernels where they are faster.");
  options.positional_help("IN -o OUT --sparsity F");
  add_input_options(options, "input shape: when known (given, or recorded by a traced model), the sparse model's "
                             "output is compared with the dense one's on synthesised inputs");
  options.add_options()
      ("in", "input TorchScript model", cxxopts::value<std::string>())
      ("o,output", "output model (written atomically; never the input)", cxxopts::value<std::string>())
      ("sparsity", "fraction of the selected weights to zero, in [0, 1) (N:M: default and at most 1 - N/M)",
       cxxopts::value<double>())
      ("pattern", "unstructured, 1x4 (blocks of 4 along the input dim, the sparse kernel's format) or 2:4 (N:M)",
       cxxopts::value<std::string>()->default_value("unstructured"))
      ("global", "rank weights (blocks) across all layers together instead of within each")
      ("include-first-last", "also prune the first layer (reads the input) and the last (the classifier)")
      ("exclude", "leave this module (and everything under it) dense (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("masks", "apply these masks (a file --save-masks wrote: weight name -> bool tensor) instead of computing them",
       cxxopts::value<std::string>())
      ("save-masks", "write the final masks here", cxxopts::value<std::string>())
      ("data", "fashion-mnist or a tensor dataset (.pt): accuracy before/after, and fine-tuning", cxxopts::value<std::string>()->default_value(""))
      ("data-dir", "folder of the Fashion-MNIST files", cxxopts::value<std::string>()->default_value(""))
      ("finetune-epochs", "fine-tune this many epochs with the masks applied after every step (needs --data)",
       cxxopts::value<int64_t>()->default_value("0"))
      ("schedule", "agp (Zhu & Gupta's cubic ramp from 0 while fine-tuning; the default with --finetune-epochs) or "
       "oneshot (prune to the target first, then fine-tune with fixed masks)", cxxopts::value<std::string>())
      ("ramp", "agp: reach the target after this fraction of the fine-tuning steps", cxxopts::value<double>()->default_value("0.75"))
      ("mask-updates", "agp: number of mask updates along the ramp", cxxopts::value<int64_t>()->default_value("20"))
      ("lr", "fine-tuning learning rate (SGD, cosine)", cxxopts::value<double>()->default_value("0.01"))
      ("batch-size", "fine-tuning batch size", cxxopts::value<int64_t>()->default_value("128"))
      ("limit", "use at most N training and N test samples (quick runs)", cxxopts::value<int64_t>()->default_value("0"))
      ("seed", "fine-tuning seed", cxxopts::value<uint64_t>()->default_value("0"))
      ("threads", "threads", cxxopts::value<int>()->default_value("2"))
      ("report", "write a JSON report here", cxxopts::value<std::string>())
      ("q,quiet", "print nothing on success")
      ("h,help", "show this help");
  add_distributed_options(options);
  options.parse_positional({"in"});
  auto r = parse_args(options, argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!r.count("in")) bad_input("no input model given (usage: compress sparsify IN -o OUT --sparsity 0.8)");
  if (!r.count("output")) bad_input("no output file given (-o OUT)");
  const SparsifyPlan plan = check_options(r);
  const std::string in = r["in"].as<std::string>(), out = r["output"].as<std::string>();
  const std::string data = r["data"].as<std::string>();
  if (r.count("nproc") && plan.epochs == 0) bad_input("--nproc parallelises fine-tuning: it needs --finetune-epochs");
  if (auto code = launch_workers(r, argc, argv)) return *code;
  // Every rank masks alike (the same weights, hence the same masks at every
  // update); the fine-tuning is data-parallel; rank 0 alone writes.
  std::shared_ptr<train::ProcessGroup> group = join_job(r);
  const bool root = !group || group->rank() == 0;
  compress::set_num_threads(r["threads"].as<int>());

  torch::jit::Module module = load_module(in);
  Graph graph = import_module(module);
  apply_input_shapes(graph, r, in, /*required=*/false);
  std::optional<sparsity::Masks> given;
  if (r.count("masks")) given = sparsity::load_masks(r["masks"].as<std::string>());

  sparsity::SparsifyOptions so;
  so.sparsity = plan.sparsity;
  so.pattern = plan.pattern;
  so.global = r.count("global") > 0;
  so.selection.include_first_last = r.count("include-first-last") > 0;
  if (r.count("exclude")) so.selection.exclude = r["exclude"].as<std::vector<std::string>>();
  so.schedule = plan.schedule == "agp" ? sparsity::Schedule::Agp : sparsity::Schedule::OneShot;
  so.ramp = r["ramp"].as<double>();
  so.mask_updates = r["mask-updates"].as<int64_t>();

  std::optional<data::TensorDataset> train_set, test_set;
  const int64_t limit = r["limit"].as<int64_t>();
  double accuracy_before = -1;
  if (!data.empty()) {
    test_set = load_data_option(data, "test", r["data-dir"].as<std::string>());
    if (limit > 0) test_set = data::take(*test_set, limit);
    module.eval();
    accuracy_before = train::evaluate(module, *test_set).top1;
  }
  train::TrainConfig cfg;
  if (plan.epochs > 0) {
    train_set = load_data_option(data, "train", r["data-dir"].as<std::string>());
    if (limit > 0) train_set = data::take(*train_set, limit);
    cfg.epochs = plan.epochs;
    cfg.batch_size = r["batch-size"].as<int64_t>();
    cfg.seed = r["seed"].as<uint64_t>();
    cfg.optimizer.lr = r["lr"].as<double>();
    cfg.optimizer.weight_decay = 5e-4;
    cfg.threads = r["threads"].as<int>();
    cfg.quiet = r.count("quiet") > 0;
    apply_distributed_options(r, group, cfg);
  }
  sparsity::SparsifyResult res;
  try {
    res = sparsity::sparsify(module, so, given ? &*given : nullptr, plan.epochs > 0 ? &cfg : nullptr,
                             train_set ? &*train_set : nullptr, test_set ? &*test_set : nullptr);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::BadInput || e.said_elsewhere()) throw;
    bad_input(in + ": " + e.what());  // the library's message, naming the model
  }
  torch::jit::Module& sparse = res.model;
  nlohmann::json report = res.report;
  if (accuracy_before >= 0) report["accuracy_before"] = accuracy_before;
  if (!root) return 0;
  if (test_set) report["accuracy_after"] = train::evaluate(sparse, *test_set).top1;
  if (!graph.example_inputs().empty()) report["output_rel_change"] = output_change(module, sparse, graph, parse_input_range(r));

  save_module(sparse, out, /*protect=*/in);
  if (r.count("save-masks")) sparsity::save_masks(res.masks, r["save-masks"].as<std::string>());

  int64_t numel = 0;
  for (const auto& l : res.layers) numel += std::accumulate(l.shape.begin(), l.shape.end(), int64_t{1}, std::multiplies<>());
  report["options"] = {{"sparsity", plan.sparsity}, {"pattern", plan.pattern.name()}, {"global", r.count("global") > 0},
                       {"schedule", plan.schedule}, {"finetune_epochs", plan.epochs}, {"lr", r["lr"].as<double>()},
                       {"masks", r.count("masks") ? r["masks"].as<std::string>() : ""}};
  report["mask_updates"] = res.mask_updates;
  report["file_bytes"] = {{"before", std::filesystem::file_size(in)}, {"after", std::filesystem::file_size(out)}};
  if (r.count("report")) write_text_file(r["report"].as<std::string>(), report.dump(2) + "\n");
  if (!r.count("quiet")) {
    std::printf("wrote %s: %.2f%% of %s weights in %zu layers are zero (%s, %s); %.2f%% of all parameters\n",
                out.c_str(), 100.0 * report["selected_sparsity"].get<double>(), with_commas(numel).c_str(),
                res.layers.size(), plan.pattern.name().c_str(), r.count("global") ? "global" : "per layer",
                100.0 * report["model_sparsity"].get<double>());
    for (const auto& l : report["layers"])
      std::printf("  %-28s %7.2f%% zero, 1x4 blocks %6.2f%% empty%s\n", l["name"].get<std::string>().c_str(),
                  100.0 * l["sparsity"].get<double>(), 100.0 * l["block_1x4_sparsity"].get<double>(),
                  l["two_of_four"].get<bool>() ? ", 2:4" : "");
    for (const auto& s : res.skipped) std::printf("  dense: %s (%s)\n", s.first.c_str(), s.second.c_str());
    if (report.contains("output_rel_change"))
      std::printf("output change against the dense model on synthesised inputs: %.4f of max |output|\n",
                  report["output_rel_change"].get<double>());
    if (report.contains("accuracy_before")) {
      std::printf("top-1 %.2f%%", 100.0 * report["accuracy_before"].get<double>());
      if (report.contains("accuracy_pruned") && plan.epochs > 0)
        std::printf(" -> %.2f%% pruned", 100.0 * report["accuracy_pruned"].get<double>());
      std::printf(" -> %.2f%%%s\n", 100.0 * report["accuracy_after"].get<double>(),
                  plan.epochs > 0 ? (" after " + std::to_string(plan.epochs) + " epoch(s) of " + plan.schedule +
                                     " fine-tuning").c_str()
                                  : "");
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace compress::cli
