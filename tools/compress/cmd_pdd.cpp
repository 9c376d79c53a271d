// compress pdd --teacher T.pt (--student S.pt | --arch NAME [--width F]) --data D --target-macs F
//              --epochs N --finetune-epochs M -o OUT
#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.h"
#include "distributed_option.h"
#include "parse_args.h"
#include "compress/distillation/pdd.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"
#include "compress/train/evaluate.h"
#include "compress/threads.h"
#include "student_option.h"
#include "train_options.h"

namespace compress::cli {

int cmd_pdd(int argc, char** argv) {
  cxxopts::Options opts("compress pdd",
                        "PDD, pruning during distillation: learnable binary channel gates on every prunable group of\n"
                        "the student, trained with its weights under cross-entropy + KD and a MACs budget; closed\n"
                        "channels are then removed and the smaller student fine-tuned (docs/distillation.md).\n");
  opts.add_options()
      ("teacher", "the teacher: any saved TorchScript classifier", cxxopts::value<std::string>()->default_value(""))
      ("student", "the student: a saved TorchScript model", cxxopts::value<std::string>()->default_value(""))
      ("arch", "the student: a new zoo model of this architecture", cxxopts::value<std::string>()->default_value(""))
      ("width", "width multiplier of the --arch student", cxxopts::value<double>()->default_value("1"))
      ("recipe", "training recipe of this zoo architecture (default: --arch's)", cxxopts::value<std::string>()->default_value(""))
      ("target-macs", "keep at most this fraction of the student's MACs, in (0, 1)", cxxopts::value<double>())
      ("budget-weight", "weight of the MACs penalty", cxxopts::value<double>()->default_value("5"))
      ("budget-tolerance", "no MACs penalty while the gated MACs are within this below the target; below it the penalty reopens gates",
       cxxopts::value<double>()->default_value("0.05"))
      ("gate-lr", "learning rate of the channel gates", cxxopts::value<double>()->default_value("0.005"))
      ("min-group-keep", "every channel group keeps at least this fraction of its channels, in (0, 1]",
       cxxopts::value<double>()->default_value("0.25"))
      ("finetune-epochs", "epochs of KD fine-tuning after the channels are removed", cxxopts::value<int64_t>()->default_value("0"))
      ("finetune-lr", "peak learning rate of the fine-tuning (default: --lr / 5)", cxxopts::value<double>())
      ("budget-by-importance", "split the MACs penalty's push over the gates by importance (|d loss / d gate|): "
       "channels that carry least close first, not the cheapest layer")
      ("one-schedule", "one learning-rate schedule over --epochs + --finetune-epochs at --lr: the fine-tuning "
       "continues it instead of restarting at --finetune-lr")
      ("temperature", "KD softmax temperature, > 0", cxxopts::value<double>()->default_value("4"))
      ("alpha", "KD weight against cross-entropy, in [0, 1]", cxxopts::value<double>()->default_value("0.9"))
      ("o,output", "where to save the pruned student (written atomically)", cxxopts::value<std::string>()->default_value(""))
      ("json", "print the result as JSON")
      ("h,help", "show this help");
  add_training_options(opts);
  add_distributed_options(opts);
  auto r = parse_args(opts, argc, argv);
  if (r.count("help")) {
    std::printf("%s\n", opts.help().c_str());
    return 0;
  }
  const std::string teacher_path = r["teacher"].as<std::string>(), student_path = r["student"].as<std::string>();
  const std::string arch = r["arch"].as<std::string>(), out = r["output"].as<std::string>();
  if (teacher_path.empty()) bad_input("--teacher MODEL is required");
  if (student_path.empty() == arch.empty()) bad_input("give exactly one student: --student MODEL or --arch NAME");
  if (out.empty()) bad_input("-o/--output is required");
  if (same_file(out, teacher_path) || (!student_path.empty() && same_file(out, student_path))) bad_input("-o " + out + " would overwrite an input model");
  if (!r.count("target-macs")) bad_input("--target-macs F is required (the fraction of the MACs to keep)");
  if (r["data"].as<std::string>().empty()) bad_input("--data is required (fashion-mnist or a tensor dataset file)");
  distillation::PddOptions o;
  o.target_macs = r["target-macs"].as<double>();
  o.budget_weight = r["budget-weight"].as<double>();
  o.budget_tolerance = r["budget-tolerance"].as<double>();
  o.gate_lr = r["gate-lr"].as<double>();
  o.min_group_keep = r["min-group-keep"].as<double>();
  o.distill.temperature = r["temperature"].as<double>();
  o.distill.alpha = r["alpha"].as<double>();
  o.one_schedule = r.count("one-schedule") > 0;
  o.budget_by_importance = r.count("budget-by-importance") > 0;
  o.validate();
  if (o.one_schedule && r.count("finetune-lr")) {
    bad_input("--finetune-lr sets the rate of a restarted fine-tuning; with --one-schedule it continues at --lr's schedule");
  }
  if (r["finetune-epochs"].as<int64_t>() < 0) bad_input("--finetune-epochs must not be negative");
  check_training_options(r);
  require_input_file(teacher_path);
  if (!student_path.empty()) require_input_file(student_path);
  const uint64_t seed = r["seed"].as<uint64_t>();
  if (auto code = launch_workers(r, argc, argv)) return *code;
  // Every rank gates and prunes alike (gradients are averaged, the removal
  // is deterministic); rank 0 alone saves, evaluates and reports.
  std::shared_ptr<train::ProcessGroup> group = join_job(r);
  const bool root = !group || group->rank() == 0;

  torch::jit::Module teacher = load_module(teacher_path);
  Student student = load_student(r, seed);
  TrainingData d = load_training_data(r);
  std::vector<int64_t> sample(d.train.inputs.sizes().begin() + 1, d.train.inputs.sizes().end());

  train::TrainConfig search = training_config(r, student.recipe, d.train.size());
  search.fingerprint = "teacher=" + teacher_path + " " + student.description + " data=" + r["data"].as<std::string>();
  apply_distributed_options(r, group, search);
  train::TrainConfig finetune = search;
  finetune.epochs = r["finetune-epochs"].as<int64_t>();
  finetune.optimizer.lr = r.count("finetune-lr") ? r["finetune-lr"].as<double>() : search.optimizer.lr / 5;
  finetune.schedule.warmup_steps = 0;
  // One checkpoint file serves the search; the fine-tuning has its own.
  if (!finetune.checkpoint_path.empty()) finetune.checkpoint_path += ".finetune";

  compress::set_num_threads(search.threads);
  distillation::PddResult res = distillation::pdd(teacher, student.graph, o, sample, d.train, search, finetune);
  if (!root) return 0;
  torch::jit::Module trained = export_module(student.graph);
  trained.eval();
  save_module(trained, out);

  train::EvalResult ev = train::evaluate(trained, d.test);
  const double kept = double(res.prune.macs_after) / double(std::max<int64_t>(1, res.prune.macs_before));
  if (r.count("json")) {
    nlohmann::json j;
    j["output"] = out;
    j["epochs"] = search.epochs;
    j["finetune_epochs"] = finetune.epochs;
    j["train_seconds"] = res.search.train.seconds + res.finetune.train.seconds;
    j["macs_before"] = res.prune.macs_before;
    j["macs_after"] = res.prune.macs_after;
    j["params_before"] = res.prune.params_before;
    j["params_after"] = res.prune.params_after;
    j["gated_macs_per_epoch"] = res.gated_macs;
    j["lr_per_epoch"] = res.epoch_lr;
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& g : res.groups) groups.push_back({{"name", g.name}, {"before", g.before}, {"after", g.after}});
    j["groups"] = groups;
    const bool fmnist = r["data"].as<std::string>() == "fashion-mnist";
    j["test"] = nlohmann::json::parse(ev.to_json(fmnist ? data::fashion_mnist_class_names() : nullptr));
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("pdd: %s under %s, %lld + %lld epochs; saved %s\n", student.description.c_str(), teacher_path.c_str(),
                (long long)search.epochs, (long long)finetune.epochs, out.c_str());
    std::printf("MACs %lld -> %lld (%.1f%%), parameters %lld -> %lld\n", (long long)res.prune.macs_before,
                (long long)res.prune.macs_after, 100 * kept, (long long)res.prune.params_before,
                (long long)res.prune.params_after);
    for (const auto& g : res.groups) std::printf("  %-24s %lld -> %lld channels\n", g.name.c_str(), (long long)g.before, (long long)g.after);
    std::printf("test: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld samples)\n", 100 * ev.top1, 100 * ev.top5,
                ev.loss, (long long)ev.count);
  }
  return 0;
}

}  // namespace compress::cli
