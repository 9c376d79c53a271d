#pragma once
// The training options shared by the commands that train (`compress train`,
// `compress distill`): data, the recipe overrides, checkpoints. Unset
// options take the recipe's value (models::default_recipe).
#include <optional>
#include <string>

#include <cxxopts.hpp>

#include "compress/data/dataset.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/models/zoo.h"
#include "compress/train/trainer.h"
#include "data_option.h"

namespace compress::cli {

inline void add_training_options(cxxopts::Options& opts) {
  opts.add_options()
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
      ("quiet", "no progress output");
}

// Cheap checks, so a mistake is reported before minutes of loading.
inline void check_training_options(const cxxopts::ParseResult& r) {
  if (r.count("resume") && r["checkpoint"].as<std::string>().empty()) bad_input("--resume needs --checkpoint FILE");
  if (r["threads"].as<int>() < 1) bad_input("--threads must be at least 1");
  for (const char* opt : {"data", "test-data"}) {
    const std::string f = r[opt].as<std::string>();
    if (!f.empty() && f != "fashion-mnist") require_input_file(f);
  }
}

struct TrainingData {
  data::TensorDataset train, test;
  std::optional<data::TensorDataset> val;
};

inline TrainingData load_training_data(const cxxopts::ParseResult& r) {
  const std::string data = r["data"].as<std::string>(), data_dir = r["data-dir"].as<std::string>();
  TrainingData d;
  d.train = data::take(load_data_option(data, "train", data_dir), r["limit"].as<int64_t>());
  const std::string test_file = r["test-data"].as<std::string>();
  d.test = test_file.empty() ? load_data_option(data, "test", data_dir) : data::load_tensor_dataset(test_file);
  const double val_fraction = r["val-fraction"].as<double>();
  if (val_fraction > 0) {
    auto [a, b] = data::train_val_split(d.train, val_fraction, r["seed"].as<uint64_t>());
    d.train = a;
    d.val = b;
  }
  return d;
}

// The recipe with the command line's overrides. The fingerprint is the caller's.
inline train::TrainConfig training_config(const cxxopts::ParseResult& r, const models::Recipe& rec,
                                          int64_t train_size) {
  train::TrainConfig cfg;
  cfg.epochs = r.count("epochs") ? r["epochs"].as<int64_t>() : rec.epochs;
  cfg.batch_size = r.count("batch-size") ? r["batch-size"].as<int64_t>() : rec.batch_size;
  cfg.seed = r["seed"].as<uint64_t>();
  cfg.optimizer.kind = r.count("optimizer") ? r["optimizer"].as<std::string>() : rec.optimizer;
  cfg.optimizer.lr = r.count("lr") ? r["lr"].as<double>() : rec.lr;
  cfg.optimizer.momentum = r.count("momentum") ? r["momentum"].as<double>() : rec.momentum;
  cfg.optimizer.nesterov = r.count("nesterov") ? r["nesterov"].as<bool>()
                                               : (cfg.optimizer.kind == "sgd" && rec.nesterov);
  cfg.optimizer.weight_decay = r.count("weight-decay") ? r["weight-decay"].as<double>() : rec.weight_decay;
  cfg.schedule.kind = r.count("schedule") ? r["schedule"].as<std::string>() : rec.schedule;
  if (cfg.batch_size <= 0) bad_input("--batch-size must be positive");
  const int64_t steps_per_epoch = std::max<int64_t>(1, train_size / cfg.batch_size);
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
  return cfg;
}

}  // namespace compress::cli
