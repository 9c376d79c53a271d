// compress qat IN -o OUT --data fashion-mnist|FILE --epochs N [--method lsq|ste] [--lr LR] [--scale-lr LR]
//   [--batch-size N] [--threads N] [--calib-batches N] [--calib-method M] [--exclude NAME ...] [--report R.json]
// Quantization-aware training: fake quantization where PTQ rounds,
// initialised by PTQ calibration, trained with the Trainer, converted to
// the same real INT8 ops as `compress quantize` (quantization/qat.h).
#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "parse_args.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/quantization/qat.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "data_option.h"
#include "distributed_option.h"

namespace compress::cli {

namespace {

double top1_percent(torch::jit::Module m, const data::TensorDataset& ds) { return train::evaluate(m, ds).top1 * 100.0; }

}  // namespace

int cmd_qat(int argc, char** argv) {
  cxxopts::Options options("compress qat",
                           "Quantization-aware training: insert fake quantization where `compress quantize` rounds "
                           "(after folding batch norm), start from its calibration, fine-tune, and write the real "
                           "INT8 model (compress::conv2d_int8 / linear_int8 ops). Reports the test accuracy of the "
                           "float, fake-quant and INT8 models and how closely the last two agree.");
  options.positional_help("IN -o OUT --data fashion-mnist --epochs N");
  options.add_options()
      ("in", "input TorchScript model (float, trained)", cxxopts::value<std::string>())
      ("o,output", "output INT8 model (written atomically; never the input)", cxxopts::value<std::string>())
      ("data", "fashion-mnist or a tensor dataset file (.pt): trains on its train split, tests on its test split",
       cxxopts::value<std::string>())
      ("data-dir", "folder holding the Fashion-MNIST IDX files", cxxopts::value<std::string>()->default_value(""))
      ("epochs", "training epochs", cxxopts::value<int64_t>()->default_value("1"))
      ("method", "lsq (learned scales) or ste (straight-through, running ranges)",
       cxxopts::value<std::string>()->default_value("lsq"))
      ("lr", "peak learning rate of the weights (SGD, momentum 0.9, cosine)", cxxopts::value<double>()->default_value("0.005"))
      ("scale-lr", "learning rate of the scales (lsq); default: --lr", cxxopts::value<double>())
      ("weight-decay", "weight decay of the weights (never of the scales)", cxxopts::value<double>()->default_value("0"))
      ("batch-size", "training batch size; also the calibration batch size", cxxopts::value<int64_t>()->default_value("128"))
      ("calib-batches", "PTQ calibration batches (from the start of the train split)",
       cxxopts::value<int64_t>()->default_value("8"))
      ("calib-method", "initial activation ranges: minmax, percentile, entropy or mse",
       cxxopts::value<std::string>()->default_value("percentile"))
      ("exclude", "keep this module or value in float (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("limit", "train on the first N samples only (quick runs)", cxxopts::value<int64_t>()->default_value("0"))
      ("threads", "intra-op threads", cxxopts::value<int>()->default_value("2"))
      ("seed", "shuffling seed", cxxopts::value<uint64_t>()->default_value("0"))
      ("report", "write the report (JSON) here", cxxopts::value<std::string>())
      ("json", "print the report as JSON instead of the summary")
      ("q,quiet", "no progress output, nothing printed on success")
      ("h,help", "show this help");
  add_distributed_options(options);
  options.parse_positional({"in"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  // Cheap checks first, so a mistake is reported before minutes of work.
  if (!args.count("in")) bad_input("no input model given (usage: compress qat IN -o OUT --data fashion-mnist)");
  if (!args.count("output")) bad_input("no output file given (-o OUT)");
  if (!args.count("data")) bad_input("--data is required (fashion-mnist or a tensor dataset file)");
  const std::string in = args["in"].as<std::string>(), out = args["output"].as<std::string>();
  require_input_file(in);
  if (same_file(in, out))
    bad_input("-o " + out + " would overwrite the input model");
  const int64_t epochs = args["epochs"].as<int64_t>(), batch = args["batch-size"].as<int64_t>();
  const int64_t calib_batches = args["calib-batches"].as<int64_t>();
  const double lr = args["lr"].as<double>();
  const double scale_lr = args.count("scale-lr") ? args["scale-lr"].as<double>() : lr;
  const int threads = args["threads"].as<int>();
  if (epochs < 1) bad_input("--epochs must be at least 1, got " + std::to_string(epochs));
  if (batch < 1) bad_input("--batch-size must be at least 1, got " + std::to_string(batch));
  if (calib_batches < 1) bad_input("--calib-batches must be at least 1, got " + std::to_string(calib_batches));
  if (!(lr > 0) || !(scale_lr > 0)) bad_input("--lr and --scale-lr must be positive");
  if (threads < 1) bad_input("--threads must be at least 1");
  quant::QatOptions qo;
  qo.method = quant::parse_qat_method(args["method"].as<std::string>());
  qo.calibration.method = quant::parse_method(args["calib-method"].as<std::string>());
  if (args.count("exclude")) qo.calibration.exclude = args["exclude"].as<std::vector<std::string>>();
  const std::string data = args["data"].as<std::string>(), data_dir = args["data-dir"].as<std::string>();
  if (data != "fashion-mnist") require_input_file(data);
  if (auto code = launch_workers(args, argc, argv)) return *code;
  // Every rank calibrates alike (the same first batches); the fine-tuning is
  // data-parallel; rank 0 alone converts, saves and reports.
  std::shared_ptr<train::ProcessGroup> group = join_job(args);
  const bool root = !group || group->rank() == 0;

  torch::jit::Module float_module = load_module(in);
  data::TensorDataset train_set = data::take(load_data_option(data, "train", data_dir), args["limit"].as<int64_t>());
  data::TensorDataset test_set = load_data_option(data, "test", data_dir);
  if (train_set.size() == 0 || test_set.size() == 0) bad_input("--data " + data + ": the data set is empty");
  train_set.inputs = train_set.inputs.to(at::kFloat);
  test_set.inputs = test_set.inputs.to(at::kFloat);
  Shape shape{batch};
  for (int64_t d : train_set.inputs.sizes().slice(1)) shape.push_back(d);
  Graph graph = import_module(float_module);
  graph.set_example_inputs({InputSpec{shape}});
  try {
    graph.infer_shapes();
  } catch (const Error& e) {
    bad_input("--data " + data + ": its samples do not fit the model: " + first_line_of(e));
  }
  at::set_num_threads(threads);

  at::Tensor calib_inputs = train_set.inputs;
  quant::CalibrationData calib{std::min(calib_batches, (train_set.size() + batch - 1) / batch),
                               [calib_inputs, batch](int64_t i) {
                                 int64_t start = i * batch;
                                 return calib_inputs.narrow(0, start, std::min(batch, calib_inputs.size(0) - start));
                               }};
  quant::QatModel qat = quant::prepare_qat(graph, calib, qo);
  const double float_top1 = root ? top1_percent(float_module, test_set) : 0;
  const double initial_top1 = root ? top1_percent(export_module(qat.graph), test_set) : 0;

  train::TrainConfig cfg;
  cfg.epochs = epochs;
  cfg.batch_size = batch;
  cfg.seed = args["seed"].as<uint64_t>();
  cfg.optimizer.kind = "sgd";
  cfg.optimizer.lr = lr;
  cfg.optimizer.momentum = 0.9;
  cfg.optimizer.weight_decay = args["weight-decay"].as<double>();
  if (!qat.scale_names().empty()) cfg.optimizer.groups.push_back(qat.scale_group(scale_lr));
  cfg.schedule.kind = "cosine";
  cfg.threads = threads;
  cfg.quiet = args.count("quiet") > 0 || args.count("json") > 0;
  cfg.fingerprint = "qat in=" + in + " data=" + data;
  apply_distributed_options(args, group, cfg);
  if (!root) cfg.quiet = true;
  train::Trainer trainer(export_module(qat.graph, quant::qat_export_options(qat)), cfg);
  trainer.add_callback(quant::qat_callback(qat));
  train::TrainResult trained = trainer.fit(train_set);
  if (!root) return 0;
  quant::load_trained(qat, trainer.module());

  quant::QuantizeReport report;
  Graph int8 = quant::convert_qat(qat, &report);
  torch::jit::Module fake = export_module(qat.graph), real = export_module(int8);
  quant::Agreement agree = quant::compare_classifiers(fake, real, test_set.inputs, test_set.labels);
  save_module(real, out, /*protect=*/in);

  nlohmann::json j = report.to_json();
  j["method"] = quant::qat_method_name(qo.method);
  j["calibration"] = {{"method", quant::method_name(qo.calibration.method)}, {"batches", calib.num_batches}};
  j["training"] = {{"epochs", epochs}, {"steps", trained.steps}, {"seconds", trained.seconds}, {"lr", lr},
                   {"scale_lr", scale_lr}, {"batch_size", batch}, {"threads", threads},
                   {"batch_norm", "folded into the convolutions before QAT"}};
  j["test"] = {{"samples", test_set.size()},
               {"float_top1", float_top1},
               {"ptq_top1", initial_top1},
               {"fake_quant_top1", agree.top1_a},
               {"int8_top1", agree.top1_b}};
  j["agreement"] = agree.to_json();
  const auto bytes_in = std::filesystem::file_size(in), bytes_out = std::filesystem::file_size(out);
  j["size"] = {{"file_bytes_in", bytes_in},
               {"file_bytes_out", bytes_out},
               {"ratio", static_cast<double>(bytes_out) / static_cast<double>(bytes_in)}};
  if (args.count("report")) write_text_file(args["report"].as<std::string>(), j.dump(2) + "\n");
  if (args.count("json")) {
    std::cout << j.dump(2) << std::endl;
  } else if (!args.count("quiet")) {
    std::printf("wrote %s: QAT (%s, %lld epochs, %.0f s), %d of %zu conv/linear layers in INT8\n", out.c_str(),
                quant::qat_method_name(qo.method), static_cast<long long>(epochs), trained.seconds,
                j["int8_layers"].get<int>(), report.layers.size());
    std::printf("test top-1 (%lld images): float %.2f%%, PTQ (QAT start) %.2f%%, fake-quant %.2f%%, INT8 %.2f%%\n",
                static_cast<long long>(test_set.size()), float_top1, initial_top1, agree.top1_a, agree.top1_b);
    std::printf("INT8 vs fake-quant: argmax agrees on %.2f%%, max |logit diff| %.3g, logit SQNR %.1f dB\n",
                agree.argmax_agree * 100.0, agree.max_abs_logit_diff, agree.logit_sqnr_db);
    for (const auto& l : report.layers)
      if (l.precision != "int8") std::printf("  float: %s (%s): %s\n", l.name.c_str(), l.ops.c_str(), l.reason.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace compress::cli
