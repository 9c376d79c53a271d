// compress train: builds a zoo model (or loads a TorchScript model) and trains it.
#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/models/zoo.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "data_option.h"
#include "distributed_option.h"

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
      ("data", "fashion-mnist or a tensor dataset file (.pt)", cxxopts::value<std::string>()->default_value(""))
      ("test-data", "tensor dataset file for the final evaluation (with a file --data)", cxxopts::value<std::string>()->default_value(""))
      ("data-dir", "folder holding the Fashion-MNIST IDX files", cxxopts::value<std::string>()->default_value(""))
      ("epochs", "epochs", cxxopts::value<int64_t>())
      ("batch-size", "batch size", cxxopts::value<int64_t>())
      ("optimizer", "sgd, adam or adamw", cxxopts::value<std::string>())
      ("lr", "peak learning rate", cxxopts::value<double>())
      ("momentum", "SGD momentum", cxxopts::value<double>())
      ("nesterov", "Nesterov momentum (true/false)", cxxopts::value<bool>())
      ("weight-decay", "weight decay", cxxopts::value<double>())
      ("schedule", "constant, step or cosine", cxxopts::value<std::string>())
      ("step-epochs", "step schedule: epochs between decays", cxxopts::value<double>()->default_value("3"))
      ("gamma", "step schedule: decay factor", cxxopts::value<double>()->default_value("0.1"))
      ("warmup-epochs", "linear warm-up length in epochs", cxxopts::value<double>())
      ("label-smoothing", "label smoothing", cxxopts::value<double>())
      ("grad-clip", "clip the global gradient norm to this (0 = off)", cxxopts::value<double>())
      ("crop-padding", "random crop after padding by this many pixels (0 = off)", cxxopts::value<int64_t>())
      ("flip", "random horizontal flips (true/false)", cxxopts::value<bool>())
      ("val-fraction", "hold out this fraction of the training set and report on it each epoch",
       cxxopts::value<double>()->default_value("0"))
      ("limit", "train on the first N samples only (quick runs)", cxxopts::value<int64_t>()->default_value("0"))
      ("seed", "seed for weights, shuffling, augmentation, dropout", cxxopts::value<uint64_t>()->default_value("0"))
      ("threads", "intra-op threads", cxxopts::value<int>()->default_value("2"))
      ("checkpoint", "checkpoint file, written atomically each epoch", cxxopts::value<std::string>()->default_value(""))
      ("checkpoint-steps", "also checkpoint every N steps", cxxopts::value<int64_t>()->default_value("0"))
      ("resume", "continue from --checkpoint when it exists")
      ("o,output", "where to save the trained model", cxxopts::value<std::string>()->default_value(""))
      ("quiet", "no progress output")
      ("json", "print the result as JSON")
      ("h,help", "show this help");
  add_distributed_options(opts);
  auto r = opts.parse(argc, argv);
  if (r.count("help")) {
    std::printf("%s\n", opts.help().c_str());
    return 0;
  }
  const std::string arch = r["arch"].as<std::string>(), init = r["init"].as<std::string>();
  const std::string out = r["output"].as<std::string>();
  if (arch.empty() == init.empty()) bad_input("give exactly one of --arch NAME or --init MODEL");
  if (out.empty()) bad_input("-o/--output is required");
  const uint64_t seed = r["seed"].as<uint64_t>();
  // Cheap checks first, so a mistake is reported before minutes of loading.
  if (r.count("resume") && r["checkpoint"].as<std::string>().empty()) bad_input("--resume needs --checkpoint FILE");
  if (r["threads"].as<int>() < 1) bad_input("--threads must be at least 1");
  for (const char* opt : {"data", "test-data"}) {
    const std::string f = r[opt].as<std::string>();
    if (!f.empty() && f != "fashion-mnist") require_input_file(f);
  }
  if (auto code = launch_workers(r, argc, argv)) return *code;
  // A worker of a data-parallel job joins it now, before minutes of loading.
  std::shared_ptr<train::ProcessGroup> group = join_job(r);
  const bool root = !group || group->rank() == 0;

  torch::jit::Module module;
  int64_t macs = -1;
  std::string recipe_name = r["recipe"].as<std::string>();
  if (!arch.empty()) {
    models::ZooModel z = models::build(arch, seed);
    module = z.module;
    macs = z.macs;
    if (recipe_name.empty()) recipe_name = arch;
  } else {
    module = load_module(init);
  }
  models::Recipe rec = recipe_name.empty() ? models::Recipe{} : models::default_recipe(recipe_name);

  const std::string data = r["data"].as<std::string>(), data_dir = r["data-dir"].as<std::string>();
  data::TensorDataset train = data::take(load_data_option(data, "train", data_dir), r["limit"].as<int64_t>());
  const std::string test_file = r["test-data"].as<std::string>();
  data::TensorDataset test = test_file.empty() ? load_data_option(data, "test", data_dir)
                                               : data::load_tensor_dataset(test_file);
  std::optional<data::TensorDataset> val;
  const double val_fraction = r["val-fraction"].as<double>();
  if (val_fraction > 0) {
    auto [a, b] = data::train_val_split(train, val_fraction, seed);
    train = a;
    val = b;
  }

  train::TrainConfig cfg;
  cfg.epochs = r.count("epochs") ? r["epochs"].as<int64_t>() : rec.epochs;
  cfg.batch_size = r.count("batch-size") ? r["batch-size"].as<int64_t>() : rec.batch_size;
  cfg.seed = seed;
  cfg.optimizer.kind = r.count("optimizer") ? r["optimizer"].as<std::string>() : rec.optimizer;
  cfg.optimizer.lr = r.count("lr") ? r["lr"].as<double>() : rec.lr;
  cfg.optimizer.momentum = r.count("momentum") ? r["momentum"].as<double>() : rec.momentum;
  cfg.optimizer.nesterov = r.count("nesterov") ? r["nesterov"].as<bool>()
                                               : (cfg.optimizer.kind == "sgd" && rec.nesterov);
  cfg.optimizer.weight_decay = r.count("weight-decay") ? r["weight-decay"].as<double>() : rec.weight_decay;
  cfg.schedule.kind = r.count("schedule") ? r["schedule"].as<std::string>() : rec.schedule;
  if (cfg.batch_size <= 0) bad_input("--batch-size must be positive");
  const int64_t steps_per_epoch = std::max<int64_t>(1, train.size() / cfg.batch_size);
  const double warmup = r.count("warmup-epochs") ? r["warmup-epochs"].as<double>() : rec.warmup_epochs;
  cfg.schedule.warmup_steps = int64_t(warmup * double(steps_per_epoch));
  cfg.schedule.step_size = std::max<int64_t>(1, int64_t(r["step-epochs"].as<double>() * double(steps_per_epoch)));
  cfg.schedule.gamma = r["gamma"].as<double>();
  cfg.label_smoothing = r.count("label-smoothing") ? r["label-smoothing"].as<double>() : rec.label_smoothing;
  cfg.grad_clip = r.count("grad-clip") ? r["grad-clip"].as<double>() : rec.grad_clip;
  cfg.augment.crop_padding = r.count("crop-padding") ? r["crop-padding"].as<int64_t>() : rec.crop_padding;
  cfg.augment.horizontal_flip = r.count("flip") ? r["flip"].as<bool>() : rec.horizontal_flip;
  cfg.threads = r["threads"].as<int>();
  if (cfg.threads < 1) bad_input("--threads must be at least 1");
  cfg.checkpoint_path = r["checkpoint"].as<std::string>();
  cfg.checkpoint_every_steps = r["checkpoint-steps"].as<int64_t>();
  cfg.resume = r.count("resume") > 0;
  if (cfg.resume && cfg.checkpoint_path.empty()) bad_input("--resume needs --checkpoint FILE");
  cfg.quiet = r.count("quiet") > 0;
  apply_distributed_options(r, group, cfg);
  // The model and data; every training setting is compared by the trainer
  // itself, which names the ones that differ on --resume.
  cfg.fingerprint = (arch.empty() ? "init=" + init : "arch=" + arch) + " data=" + data;

  at::set_num_threads(cfg.threads);
  train::Trainer trainer(module, cfg);
  train::TrainResult res = trainer.fit(train, val ? &*val : nullptr);
  if (!root) return 0;  // rank 0 alone saves, evaluates and reports
  module.eval();
  save_module(module, out, init);

  train::EvalResult ev = train::evaluate(module, test);
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
