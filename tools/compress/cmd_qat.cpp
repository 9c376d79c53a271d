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
#include "compress/threads.h"
#include "distributed_option.h"
#include "qat_options.h"

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
      ("epochs", "training epochs", cxxopts::value<int64_t>()->default_value("1"))
      ("method", "lsq (learned scales) or ste (straight-through, running ranges)",
       cxxopts::value<std::string>()->default_value("lsq"))
      ("scale-lr", "learning rate of the scales (lsq); default: --lr", cxxopts::value<double>())
      ("exclude", "keep this module or value in float (repeatable)", cxxopts::value<std::vector<std::string>>());
  add_qat_training_options(options, "0.005", "peak learning rate of the weights (SGD, momentum 0.9, cosine)");
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
  if (!(lr > 0) || !(scale_lr > 0)) bad_input("--lr and --scale-lr must be positive");
  check_qat_training_options(args);
  quant::QatOptions qo;
  qo.method = quant::parse_qat_method(args["method"].as<std::string>());
  qo.calibration.method = quant::parse_method(args["calib-method"].as<std::string>());
  if (args.count("exclude")) qo.calibration.exclude = args["exclude"].as<std::vector<std::string>>();
  const std::string data = args["data"].as<std::string>();
  if (auto code = launch_workers(args, argc, argv)) return *code;
  // Every rank calibrates alike (the same first batches); the fine-tuning is
  // data-parallel; rank 0 alone converts, saves and reports.
  std::shared_ptr<train::ProcessGroup> group = join_job(args);
  const bool root = !group || group->rank() == 0;

  torch::jit::Module float_module = load_module(in);
  Graph graph = import_module(float_module);
  const QatData sets = load_qat_data(args, graph, batch);
  const data::TensorDataset &train_set = sets.train, &test_set = sets.test;
  compress::set_num_threads(threads);

  quant::CalibrationData calib = quant::CalibrationData::first_batches(train_set.inputs, batch, calib_batches);
  quant::QatModel qat = quant::prepare_qat(graph, calib, qo);
  const double float_top1 = root ? top1_percent(float_module, test_set) : 0;
  const double initial_top1 = root ? top1_percent(export_module(qat.graph), test_set) : 0;

  train::TrainConfig cfg = qat_train_config(args, epochs);
  if (!qat.scale_names().empty()) cfg.optimizer.groups.push_back(qat.scale_group(scale_lr));
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
