// compress train: builds a zoo model (or loads a TorchScript model) and trains it.
#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.h"
#include "parse_args.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/models/reinit.h"
#include "compress/models/zoo.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "compress/threads.h"
#include "distributed_option.h"
#include "train_options.h"

namespace compress::cli {

int cmd_train(int argc, char** argv) {
  std::string archs;
  for (const auto& n : models::zoo_names()) archs += "\n    " + n + ": " + models::zoo_summary(n);
  cxxopts::Options opts("compress train",
                        "Train a baseline model (or fine-tune a TorchScript model) and report its test accuracy.\n"
                        "Unset training options take the architecture's recipe (docs/training.md).\n"
                        "Architectures:" + archs + "\n");
  opts.add_options()
      ("arch", "zoo architecture to build", cxxopts::value<std::string>()->default_value(""))
      ("init", "train this TorchScript model instead of a new zoo model", cxxopts::value<std::string>()->default_value(""))
      ("recipe", "take the training recipe of this architecture (with --init)", cxxopts::value<std::string>()->default_value(""))
      ("reinit", "with --init: keep the model's architecture but start from fresh weights drawn from --seed")
      ("width", "width multiplier of the --arch model (0.5: half the channels)", cxxopts::value<double>()->default_value("1"))
      ("o,output", "where to save the trained model", cxxopts::value<std::string>()->default_value(""))
      ("json", "print the result as JSON")
      ("h,help", "show this help");
  add_training_options(opts);
  add_distributed_options(opts);
  auto r = parse_args(opts, argc, argv);
  if (r.count("help")) {
    std::printf("%s\n", opts.help().c_str());
    return 0;
  }
  const std::string arch = r["arch"].as<std::string>(), init = r["init"].as<std::string>();
  const std::string out = r["output"].as<std::string>();
  if (arch.empty() == init.empty()) bad_input("give exactly one of --arch NAME or --init MODEL");
  if (out.empty()) bad_input("-o/--output is required");
  const bool reinit = r.count("reinit") > 0;
  if (reinit && init.empty()) bad_input("--reinit needs --init MODEL (an --arch model starts from fresh weights anyway)");
  const uint64_t seed = r["seed"].as<uint64_t>();
  check_training_options(r);
  if (auto code = launch_workers(r, argc, argv)) return *code;
  // A worker of a data-parallel job joins it now, before minutes of loading.
  std::shared_ptr<train::ProcessGroup> group = join_job(r);
  const bool root = !group || group->rank() == 0;

  torch::jit::Module module;
  int64_t macs = -1;
  std::string recipe_name = r["recipe"].as<std::string>();
  if (!arch.empty()) {
    models::ZooModel z = models::build(arch, seed, 10, r["width"].as<double>());
    module = z.module;
    macs = z.macs;
    if (recipe_name.empty()) recipe_name = arch;
  } else {
    module = load_module(init);
    // "The same architecture trained from scratch": e.g. a pruned model's shapes.
    if (reinit) models::reinitialize(module, seed);
  }
  models::Recipe rec = recipe_name.empty() ? models::Recipe{} : models::default_recipe(recipe_name);

  TrainingData d = load_training_data(r);
  const std::string data = r["data"].as<std::string>();
  train::TrainConfig cfg = training_config(r, rec, d.train.size());
  apply_distributed_options(r, group, cfg);
  // The model and data; every training setting is compared by the trainer
  // itself, which names the ones that differ on --resume.
  cfg.fingerprint = (arch.empty() ? "init=" + init : "arch=" + arch) + (reinit ? " reinit" : "") + " data=" + data;
  if (r["width"].as<double>() != 1) cfg.fingerprint += " width=" + std::to_string(r["width"].as<double>());

  compress::set_num_threads(cfg.threads);
  train::Trainer trainer(module, cfg);
  train::TrainResult res = trainer.fit(d.train, d.val ? &*d.val : nullptr);
  if (!root) return 0;  // rank 0 alone saves, evaluates and reports
  module.eval();
  save_module(module, out, init);

  train::EvalResult ev = train::evaluate(module, d.test);
  const int64_t params = models::count_parameters(module);
  if (r.count("json")) {
    nlohmann::json j;
    j["output"] = out;
    j["arch"] = arch.empty() ? nlohmann::json(nullptr) : nlohmann::json(arch);
    j["epochs"] = cfg.epochs;
    j["steps"] = res.steps;
    j["train_seconds"] = res.seconds;
    j["train_cpu_seconds"] = res.cpu_seconds;  // this process (rank 0)
    j["world_size"] = group ? group->world_size() : 1;
    j["parameters"] = params;
    j["macs"] = macs >= 0 ? nlohmann::json(macs) : nlohmann::json(nullptr);
    j["test"] = nlohmann::json::parse(ev.to_json(data == "fashion-mnist" ? data::fashion_mnist_class_names() : nullptr));
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("trained %s for %lld epochs (%lld steps) in %.1fs; saved %s\n",
                arch.empty() ? init.c_str() : arch.c_str(), (long long)cfg.epochs, (long long)res.steps,
                res.seconds, out.c_str());
    std::printf("parameters %lld", (long long)params);
    if (macs >= 0) std::printf(", MACs %.2fM", double(macs) / 1e6);
    std::printf("\ntest: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld samples)\n", 100 * ev.top1, 100 * ev.top5,
                ev.loss, (long long)ev.count);
  }
  return 0;
}

}  // namespace compress::cli
