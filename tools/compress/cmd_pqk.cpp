// compress pqk IN -o OUT --data fashion-mnist|FILE --target-macs F --epochs N [--finetune-epochs M]
//   [--temperature T --alpha A] [--prune-steps K] [--prune-end F] [--criterion C] [--input-shape S]
//   [--teacher restored|input] [--phase1-kd] [--phase1-float [--recalibrate-bn N]] [--repair-fraction F]
//   [--check-samples N] [--no-kd-gate] [--report R.json] [--nproc P]
// PQK: phase 1 prunes while training with fake quantization, phase 2
// distils the pruned student from the unpruned network with the removed
// weights restored; the result is the real INT8 model (distillation/pqk.h).
#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "compress/analysis/profile.h"
#include "compress/distillation/pqk.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/train/evaluate.h"
#include "compress/train/latency_compare.h"
#include "compress/threads.h"
#include "distributed_option.h"
#include "parse_args.h"
#include "qat_options.h"

namespace compress::cli {

namespace {

double top1_percent(torch::jit::Module m, const data::TensorDataset& ds) { return train::evaluate(m, ds).top1 * 100.0; }

}  // namespace

int cmd_pqk(int argc, char** argv) {
  cxxopts::Options options(
      "compress pqk",
      "PQK (Kim et al. 2021): phase 1 masks channel groups step by step down to --target-macs while training with "
      "fake quantization; the masked channels are removed; phase 2 trains the pruned student with KD from the "
      "unpruned network carrying the removed weights restored (no separate teacher). Writes the real INT8 model "
      "(compress::conv2d_int8 / linear_int8 ops), like `compress qat` (docs/distillation.md).");
  options.positional_help("IN -o OUT --data fashion-mnist --target-macs F --epochs N");
  options.add_options()
      ("in", "input TorchScript model (float, trained)", cxxopts::value<std::string>())
      ("o,output", "output INT8 model (written atomically; never the input)", cxxopts::value<std::string>())
      ("target-macs", "keep at most this fraction of the MACs, in (0, 1)", cxxopts::value<double>())
      ("epochs", "phase 1 epochs: pruning with fake quantization", cxxopts::value<int64_t>()->default_value("1"))
      ("finetune-epochs", "phase 2 epochs: KD of the pruned student (0: none)",
       cxxopts::value<int64_t>()->default_value("1"))
      ("prune-steps", "masking steps in phase 1 (the first before training)", cxxopts::value<int64_t>()->default_value("4"))
      ("prune-end", "the last masking step comes after this fraction of phase 1, in [0, 1]",
       cxxopts::value<double>()->default_value("0.5"))
      ("criterion", "channel ranking: l1, l2, fpgm, taylor, random", cxxopts::value<std::string>()->default_value("l1"))
      ("temperature", "KD softmax temperature, > 0", cxxopts::value<double>()->default_value("4"))
      ("alpha", "KD weight against cross-entropy, in [0, 1]", cxxopts::value<double>()->default_value("0.9"))
      ("teacher", "phase 2's teacher: restored (the phase-1 network with the removed weights restored, then "
       "repaired) or input (the float model IN as given)", cxxopts::value<std::string>()->default_value("restored"))
      ("phase1-kd", "phase 1 also distils, from the float model IN (with --temperature and --alpha)")
      ("phase1-float", "phase 1 trains in float (batch norms unfolded, no fake quantization); fake quantization "
       "starts with phase 2")
      ("recalibrate-bn", "with --phase1-float: re-estimate the batch norms on this many batches of 64 training "
       "samples after the removal (0: not)", cxxopts::value<int64_t>()->default_value("20"))
      ("repair-fraction", "teacher repair before phase 2: train only the restored weights for this fraction of an "
       "epoch, in [0, 1] (0: off)", cxxopts::value<double>()->default_value("0.25"))
      ("check-samples", "training samples kept out of the repair to compare the teacher with the student",
       cxxopts::value<int64_t>()->default_value("2000"))
      ("no-kd-gate", "distil even when the teacher is no better than the student on the check samples")
      ("finetune-lr", "peak learning rate of phase 2 (default: --lr)", cxxopts::value<double>())
      ("scale-lr", "learning rate of the quantization scales (default: --lr / 2)", cxxopts::value<double>())
      ("input-shape", "N,C,H,W: must match the data's samples (default: the data's)", cxxopts::value<std::string>())
      ("latency", "also time the float input and the INT8 output side by side: 1 thread, batches 1 and 32, "
       "best median of 2 rounds x 20 calls (as the pipeline's bench stage)");
  add_qat_training_options(options, "0.01", "peak learning rate of the weights (SGD, momentum 0.9, cosine), both phases");
  add_distributed_options(options);
  options.parse_positional({"in"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  // Cheap checks first, so a mistake is reported before minutes of work.
  if (!args.count("in")) bad_input("no input model given (usage: compress pqk IN -o OUT --data fashion-mnist)");
  if (!args.count("output")) bad_input("no output file given (-o OUT)");
  if (!args.count("data")) bad_input("--data is required (fashion-mnist or a tensor dataset file)");
  if (!args.count("target-macs")) bad_input("--target-macs F is required (the fraction of the MACs to keep)");
  const std::string in = args["in"].as<std::string>(), out = args["output"].as<std::string>();
  require_input_file(in);
  if (same_file(in, out)) bad_input("-o " + out + " would overwrite the input model");
  distillation::PqkOptions o;
  o.target_macs = args["target-macs"].as<double>();
  o.prune_steps = args["prune-steps"].as<int64_t>();
  o.prune_end = args["prune-end"].as<double>();
  o.criterion = pruning::parse_criterion(args["criterion"].as<std::string>());
  if (o.criterion == pruning::Criterion::BatchNorm || o.criterion == pruning::Criterion::Attention)
    bad_input("--criterion " + args["criterion"].as<std::string>() + " does not apply after batch norm folding");
  o.distill.temperature = args["temperature"].as<double>();
  o.distill.alpha = args["alpha"].as<double>();
  o.teacher = distillation::parse_pqk_teacher(args["teacher"].as<std::string>());
  o.phase1_kd = args.count("phase1-kd") > 0;
  o.phase1_float = args.count("phase1-float") > 0;
  o.recalibrate_batches = args["recalibrate-bn"].as<int64_t>();
  o.repair_fraction = args["repair-fraction"].as<double>();
  o.check_samples = args["check-samples"].as<int64_t>();
  o.kd_gate = !args.count("no-kd-gate");
  const int64_t epochs = args["epochs"].as<int64_t>(), finetune_epochs = args["finetune-epochs"].as<int64_t>();
  const int64_t batch = args["batch-size"].as<int64_t>(), calib_batches = args["calib-batches"].as<int64_t>();
  const double lr = args["lr"].as<double>();
  const double finetune_lr = args.count("finetune-lr") ? args["finetune-lr"].as<double>() : lr;
  o.scale_lr = args.count("scale-lr") ? args["scale-lr"].as<double>() : lr / 2;
  const int threads = args["threads"].as<int>();
  if (epochs < 1) bad_input("--epochs must be at least 1, got " + std::to_string(epochs));
  if (finetune_epochs < 0) bad_input("--finetune-epochs must not be negative");
  if (!(lr > 0) || !(finetune_lr > 0)) bad_input("--lr and --finetune-lr must be positive");
  check_qat_training_options(args);
  o.qat.calibration.method = quant::parse_method(args["calib-method"].as<std::string>());
  o.validate();
  const std::string data = args["data"].as<std::string>();
  if (auto code = launch_workers(args, argc, argv)) return *code;
  // Every rank masks alike (the weights are the same on every rank after
  // each averaged step); rank 0 alone converts, saves and reports.
  std::shared_ptr<train::ProcessGroup> group = join_job(args);
  const bool root = !group || group->rank() == 0;

  torch::jit::Module float_module = load_module(in);
  Graph graph = import_module(float_module);
  const QatData sets = load_qat_data(args, graph, 1);
  const data::TensorDataset &train_set = sets.train, &test_set = sets.test;
  if (args.count("input-shape")) {
    Shape s = parse_shape(args["input-shape"].as<std::string>(), "--input-shape");
    if (Shape(s.begin() + std::min<size_t>(1, s.size()), s.end()) != sets.sample)
      bad_input("--input-shape " + args["input-shape"].as<std::string>() + " does not match the samples of --data " +
                data);
  }
  compress::set_num_threads(threads);

  quant::CalibrationData calib = quant::CalibrationData::first_batches(train_set.inputs, batch, calib_batches);
  train::TrainConfig phase1 = qat_train_config(args, epochs);
  phase1.quiet = phase1.quiet || !root;
  phase1.fingerprint = "pqk in=" + in + " data=" + data;
  apply_distributed_options(args, group, phase1);
  train::TrainConfig phase2 = phase1;
  phase2.epochs = finetune_epochs;
  phase2.optimizer.lr = finetune_lr;

  distillation::PqkResult res = distillation::pqk(graph, o, sets.sample, calib, train_set, phase1, phase2);
  if (!root) return 0;

  quant::QuantizeReport report;
  Graph int8 = quant::convert_qat(res.student, &report);
  torch::jit::Module fake = export_module(res.student.graph), real = export_module(int8);
  quant::Agreement agree = quant::compare_classifiers(fake, real, test_set.inputs, test_set.labels);
  save_module(real, out, /*protect=*/in);

  const double float_top1 = top1_percent(float_module, test_set);
  const double teacher_top1 = top1_percent(export_module(res.teacher), test_set);
  const bool input_teacher = o.teacher == distillation::PqkTeacher::Input;
  const double stale_teacher_top1 = res.repair.steps > 0 || input_teacher
                                        ? top1_percent(export_module(res.stale_teacher), test_set)
                                        : teacher_top1;
  const double phase1_top1 = top1_percent(export_module(res.phase1_student), test_set);
  const double kept = double(res.prune.macs_after) / double(std::max<int64_t>(1, res.prune.macs_before));
  nlohmann::json j = report.to_json();
  j["method"] = "pqk";
  j["target_macs"] = o.target_macs;
  j["prune"] = res.prune.to_json();
  j["macs_kept"] = kept;
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : res.prune_steps)
    steps.push_back({{"after_steps", s.after_steps}, {"target", s.target}, {"macs_kept", s.macs_kept}});
  j["prune_steps"] = steps;
  auto terms_json = [](const std::vector<distillation::EpochTerms>& terms) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& t : terms) a.push_back({{"cross_entropy", t.cross_entropy}, {"kd", t.kd}, {"total", t.total}});
    return a;
  };
  nlohmann::json phase1_loss = nlohmann::json::array();
  for (const auto& e : res.phase1.history) phase1_loss.push_back(e.train_loss);
  j["training"] = {{"epochs", epochs},
                   {"finetune_epochs", finetune_epochs},
                   {"phase1_seconds", res.phase1.seconds},
                   {"teacher", input_teacher ? "input" : "restored"},
                   {"phase1_kd", o.phase1_kd},
                   {"phase1_float", o.phase1_float},
                   {"batch_norms_recalibrated", res.batch_norms_recalibrated},
                   {"repair_fraction", o.repair_fraction},
                   {"repair_steps", res.repair.steps},
                   {"repair_seconds", res.repair.seconds},
                   {"kd_used", res.kd_used},
                   {"phase2_seconds", res.phase2.train.seconds},
                   {"phase1_loss", phase1_loss},
                   {"phase1_terms", terms_json(res.phase1_terms)},
                   {"phase2_terms", terms_json(res.phase2.terms)},
                   {"lr", lr},
                   {"finetune_lr", finetune_lr},
                   {"scale_lr", o.scale_lr},
                   {"temperature", o.distill.temperature},
                   {"alpha", o.distill.alpha},
                   {"batch_size", batch},
                   {"threads", threads}};
  j["test"] = {{"samples", test_set.size()},
               {"float_top1", float_top1},
               {"stale_teacher_top1", stale_teacher_top1},
               {"teacher_top1", teacher_top1},
               {"phase1_float_top1", phase1_top1},
               {"fake_quant_top1", agree.top1_a},
               {"int8_top1", agree.top1_b}};
  j["agreement"] = agree.to_json();
  // Training samples the repair did not use (top-1 in %; -1: no check samples).
  auto percent = [](double f) { return f < 0 ? -1.0 : 100 * f; };
  j["check"] = {{"samples", res.check_samples},
                {"stale_teacher_top1", percent(res.stale_teacher_check_top1)},
                {"teacher_top1", percent(res.teacher_check_top1)},
                {"student_top1", percent(res.student_check_top1)}};
  const auto bytes_in = std::filesystem::file_size(in), bytes_out = std::filesystem::file_size(out);
  j["size"] = {{"file_bytes_in", bytes_in},
               {"file_bytes_out", bytes_out},
               {"ratio", static_cast<double>(bytes_out) / static_cast<double>(bytes_in)}};
  if (args.count("latency")) {
    std::vector<torch::jit::Module> models{float_module, real};
    const train::SideBySideLatency best = train::compare_latency(models, sets.sample, train::LatencyOptions{}, 2);
    const char* names[] = {"float", "int8"};
    for (size_t i = 0; i < models.size(); ++i)
      for (const auto& [batch_size, ms] : best[i].at(1)) j["latency_ms"][names[i]][std::to_string(batch_size)] = ms;
  }
  if (args.count("report")) write_text_file(args["report"].as<std::string>(), j.dump(2) + "\n");
  if (args.count("json")) {
    std::cout << j.dump(2) << std::endl;
  } else if (!args.count("quiet")) {
    std::printf("wrote %s: PQK (%lld + %lld epochs, %.0f + %.0f s), MACs %lld -> %lld (%.1f%%), %d INT8 layers\n",
                out.c_str(), (long long)epochs, (long long)finetune_epochs, res.phase1.seconds,
                res.phase2.train.seconds, (long long)res.prune.macs_before, (long long)res.prune.macs_after,
                100 * kept, j["int8_layers"].get<int>());
    std::printf("test top-1 (%lld images): float %.2f%%, teacher (%s) %.2f%% (restored, before any repair: %.2f%%), "
                "after phase 1 (float) %.2f%%, fake-quant %.2f%%, INT8 %.2f%%\n",
                (long long)test_set.size(), float_top1, input_teacher ? "input" : "restored", teacher_top1,
                stale_teacher_top1, phase1_top1, agree.top1_a, agree.top1_b);
    if (finetune_epochs > 0 && !res.kd_used && o.distill.alpha > 0)  // the gate closed it (not --alpha 0)
      std::printf("phase 2 ran on cross-entropy alone: the teacher was no better than the student on the check "
                  "samples\n");
    if (j.contains("latency_ms")) {
      for (const auto& [batch_size, ms] : j["latency_ms"]["float"].items()) {
        const double q = j["latency_ms"]["int8"][batch_size].get<double>();
        std::printf("latency (1 thread, batch %s): float %.3f ms, INT8 %.3f ms (%.2fx)\n", batch_size.c_str(),
                    ms.get<double>(), q, ms.get<double>() / q);
      }
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace compress::cli
