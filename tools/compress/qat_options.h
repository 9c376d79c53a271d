#pragma once
// What the commands that train with fake quantization from a trained model
// share (`compress qat`, `compress pqk`): the data and training options, the
// data sets fitted to the model, the calibration batches and the SGD +
// cosine training configuration.
#include <algorithm>
#include <string>

#include <cxxopts.hpp>

#include "compress/data/dataset.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/graph.h"
#include "compress/quantization/quantize.h"
#include "compress/train/trainer.h"
#include "data_option.h"

namespace compress::cli {

// --data, --data-dir, --lr (default `lr`), --scale-lr, --weight-decay,
// --batch-size, --calib-batches, --calib-method, --limit, --threads, --seed,
// --report, --json, --quiet, --help.
inline void add_qat_training_options(cxxopts::Options& options, const std::string& lr, const std::string& lr_help) {
  options.add_options()
      ("data", "fashion-mnist or a tensor dataset file (.pt): trains on its train split, tests on its test split",
       cxxopts::value<std::string>())
      ("data-dir", "folder holding the Fashion-MNIST IDX files", cxxopts::value<std::string>()->default_value(""))
      ("lr", lr_help, cxxopts::value<double>()->default_value(lr))
      ("weight-decay", "weight decay of the weights (never of the scales)", cxxopts::value<double>()->default_value("0"))
      ("batch-size", "training batch size; also the calibration batch size", cxxopts::value<int64_t>()->default_value("128"))
      ("calib-batches", "calibration batches of the fake quantizers (from the start of the train split)",
       cxxopts::value<int64_t>()->default_value("8"))
      ("calib-method", "initial activation ranges: minmax, percentile, entropy or mse",
       cxxopts::value<std::string>()->default_value("percentile"))
      ("limit", "train on the first N samples only (quick runs)", cxxopts::value<int64_t>()->default_value("0"))
      ("threads", "intra-op threads", cxxopts::value<int>()->default_value("2"))
      ("seed", "shuffling seed", cxxopts::value<uint64_t>()->default_value("0"))
      ("report", "write the report (JSON) here", cxxopts::value<std::string>())
      ("json", "print the report as JSON instead of the summary")
      ("q,quiet", "no progress output, nothing printed on success")
      ("h,help", "show this help");
}

// The cheap checks of those options (before anything is loaded).
inline void check_qat_training_options(const cxxopts::ParseResult& args) {
  if (args["batch-size"].as<int64_t>() < 1)
    bad_input("--batch-size must be at least 1, got " + std::to_string(args["batch-size"].as<int64_t>()));
  if (args["calib-batches"].as<int64_t>() < 1)
    bad_input("--calib-batches must be at least 1, got " + std::to_string(args["calib-batches"].as<int64_t>()));
  if (args["threads"].as<int>() < 1) bad_input("--threads must be at least 1");
  const std::string data = args["data"].as<std::string>();
  if (data != "fashion-mnist") require_input_file(data);
}

struct QatData {
  data::TensorDataset train, test;  // float inputs
  Shape sample;                     // one input without the batch dimension
};

// The train (first --limit samples) and test splits of --data, as float;
// `graph` gets example inputs of `batch` samples and must accept them.
inline QatData load_qat_data(const cxxopts::ParseResult& args, Graph& graph, int64_t batch) {
  const std::string data = args["data"].as<std::string>(), data_dir = args["data-dir"].as<std::string>();
  QatData d;
  d.train = data::take(load_data_option(data, "train", data_dir), args["limit"].as<int64_t>());
  d.test = load_data_option(data, "test", data_dir);
  if (d.train.size() == 0 || d.test.size() == 0) bad_input("--data " + data + ": the data set is empty");
  d.train.inputs = d.train.inputs.to(at::kFloat);
  d.test.inputs = d.test.inputs.to(at::kFloat);
  d.sample.assign(d.train.inputs.sizes().begin() + 1, d.train.inputs.sizes().end());
  Shape shape{batch};
  shape.insert(shape.end(), d.sample.begin(), d.sample.end());
  graph.set_example_inputs({InputSpec{shape}});
  try {
    graph.infer_shapes();
  } catch (const Error& e) {
    bad_input("--data " + data + ": its samples do not fit the model: " + first_line_of(e));
  }
  return d;
}

// The first `batches` batches of `inputs` (fewer when it is shorter).
// SGD with momentum 0.9 and cosine decay at --lr, --batch-size, --seed,
// --weight-decay, --threads; quiet with --quiet or --json.
inline train::TrainConfig qat_train_config(const cxxopts::ParseResult& args, int64_t epochs) {
  train::TrainConfig cfg;
  cfg.epochs = epochs;
  cfg.batch_size = args["batch-size"].as<int64_t>();
  cfg.seed = args["seed"].as<uint64_t>();
  cfg.optimizer.kind = "sgd";
  cfg.optimizer.lr = args["lr"].as<double>();
  cfg.optimizer.momentum = 0.9;
  cfg.optimizer.weight_decay = args["weight-decay"].as<double>();
  cfg.schedule.kind = "cosine";
  cfg.threads = args["threads"].as<int>();
  cfg.quiet = args.count("quiet") > 0 || args.count("json") > 0;
  return cfg;
}

}  // namespace compress::cli
