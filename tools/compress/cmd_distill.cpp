// compress distill --teacher T.pt (--student S.pt | --arch NAME [--width F] | --prune-teacher F)
//                  --data D [--loss kd|fitnet|at ...] [--temperature T] [--alpha A]
//                  [--feature STUDENT_VALUE=TEACHER_VALUE ...] -o OUT
#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.h"
#include "parse_args.h"
#include "compress/distillation/distill.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"
#include "compress/pruning/prune.h"
#include "compress/train/evaluate.h"
#include "compress/threads.h"
#include "distributed_option.h"
#include "student_option.h"
#include "train_options.h"

namespace compress::cli {

namespace {

distillation::DistillOptions distill_options(const cxxopts::ParseResult& r) {
  distillation::DistillOptions o;
  if (r.count("loss")) {
    o.losses.clear();
    for (const auto& l : r["loss"].as<std::vector<std::string>>()) o.losses.push_back(distillation::parse_loss(l));
  }
  o.temperature = r["temperature"].as<double>();
  o.alpha = r["alpha"].as<double>();
  if (r.count("feature")) {
    for (const auto& f : r["feature"].as<std::vector<std::string>>()) {
      o.features.push_back(distillation::parse_feature_pair(f));
    }
  }
  o.hint_weight = r["hint-weight"].as<double>();
  o.at_beta = r["at-beta"].as<double>();
  if (r.count("adapter-lr")) o.adapter_lr = r["adapter-lr"].as<double>();
  const std::string cache = r["cache-teacher"].as<std::string>();
  if (cache == "auto") o.cache = distillation::TeacherCache::Auto;
  else if (cache == "on") o.cache = distillation::TeacherCache::On;
  else if (cache == "off") o.cache = distillation::TeacherCache::Off;
  else bad_input("--cache-teacher must be auto, on or off, got '" + cache + "'");
  o.validate();
  return o;
}

}  // namespace

int cmd_distill(int argc, char** argv) {
  cxxopts::Options opts("compress distill",
                        "Knowledge distillation: train a student under a frozen teacher (docs/distillation.md).\n"
                        "The loss is alpha * KD + (1 - alpha) * cross-entropy, plus hint_weight * FitNet hints and\n"
                        "at_beta / 2 * attention transfer on the --feature pairs (value names: compress inspect --graph).\n"
                        "Unset training options take the recipe of --arch or --recipe (docs/training.md).\n");
  opts.add_options()
      ("teacher", "the teacher: any saved TorchScript classifier", cxxopts::value<std::string>()->default_value(""))
      ("student", "the student: a saved TorchScript model", cxxopts::value<std::string>()->default_value(""))
      ("arch", "the student: a new zoo model of this architecture", cxxopts::value<std::string>()->default_value(""))
      ("width", "width multiplier of the --arch student (0.5: half the channels)", cxxopts::value<double>()->default_value("1"))
      ("prune-teacher", "the student: the teacher pruned (L1) to keep this fraction of its MACs, in (0, 1)",
       cxxopts::value<double>())
      ("recipe", "training recipe of this zoo architecture (default: --arch's)", cxxopts::value<std::string>()->default_value(""))
      ("loss", "kd, fitnet, at (repeatable or comma-separated; default kd)", cxxopts::value<std::vector<std::string>>())
      ("temperature", "KD softmax temperature, > 0", cxxopts::value<double>()->default_value("4"))
      ("alpha", "KD weight against cross-entropy, in [0, 1]", cxxopts::value<double>()->default_value("0.9"))
      ("feature", "STUDENT_VALUE=TEACHER_VALUE for fitnet / at (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("hint-weight", "weight of the FitNet hint losses", cxxopts::value<double>()->default_value("1"))
      ("at-beta", "attention transfer: beta (the loss is beta / 2 * the mean squared map difference)",
       cxxopts::value<double>()->default_value("1000"))
      ("adapter-lr", "learning rate of the FitNet adapters (default: the student's)", cxxopts::value<double>())
      ("cache-teacher", "compute the teacher's outputs once before training: auto (when batches are not "
       "augmented and they fit in 1 GiB), on, off", cxxopts::value<std::string>()->default_value("auto"))
      ("o,output", "where to save the student (written atomically)", cxxopts::value<std::string>()->default_value(""))
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
  if (int(!student_path.empty()) + int(!arch.empty()) + int(r.count("prune-teacher") > 0) != 1) {
    bad_input("give exactly one student: --student MODEL, --arch NAME or --prune-teacher F");
  }
  if (r.count("prune-teacher")) {
    const double keep = r["prune-teacher"].as<double>();
    if (!(keep > 0 && keep < 1)) bad_input("--prune-teacher must be in (0, 1), got " + std::to_string(keep));
  }
  if (out.empty()) bad_input("-o/--output is required");
  if (same_file(out, teacher_path) || (!student_path.empty() && same_file(out, student_path))) bad_input("-o " + out + " would overwrite an input model");
  if (r["data"].as<std::string>().empty()) bad_input("--data is required (fashion-mnist or a tensor dataset file)");
  const distillation::DistillOptions options = distill_options(r);
  check_training_options(r);
  require_input_file(teacher_path);
  if (!student_path.empty()) require_input_file(student_path);
  const uint64_t seed = r["seed"].as<uint64_t>();
  if (auto code = launch_workers(r, argc, argv)) return *code;
  // Every rank builds the same student (same inputs and seed); the training
  // is data-parallel; rank 0 alone saves, evaluates and reports.
  std::shared_ptr<train::ProcessGroup> group = join_job(r);
  const bool root = !group || group->rank() == 0;

  torch::jit::Module teacher = load_module(teacher_path);
  Student student;
  if (r.count("prune-teacher")) {
    // Pruned below, once the data gives the input shape.
    student.graph = import_module(teacher);
    student.description = "prune-teacher=" + std::to_string(r["prune-teacher"].as<double>());
    if (!r["recipe"].as<std::string>().empty()) student.recipe = models::default_recipe(r["recipe"].as<std::string>());
  } else {
    student = load_student(r, seed);
  }

  TrainingData d = load_training_data(r);
  std::vector<int64_t> sample(d.train.inputs.sizes().begin() + 1, d.train.inputs.sizes().end());
  if (r.count("prune-teacher")) {
    std::vector<int64_t> one = sample;
    one.insert(one.begin(), 1);
    student.graph.set_example_inputs({InputSpec{one}});
    pruning::PruneOptions po;
    po.target_macs = r["prune-teacher"].as<double>();
    po.seed = seed;
    pruning::prune(student.graph, po);
  }
  train::TrainConfig cfg = training_config(r, student.recipe, d.train.size());
  cfg.fingerprint = "teacher=" + teacher_path + " " + student.description + " data=" + r["data"].as<std::string>();
  apply_distributed_options(r, group, cfg);

  compress::set_num_threads(cfg.threads);
  distillation::Distiller distiller(teacher, std::move(student.graph), options, sample);
  distillation::DistillResult res = distiller.fit(d.train, cfg, d.val ? &*d.val : nullptr);
  if (!root) return 0;
  torch::jit::Module trained = distiller.student_module();
  save_module(trained, out);

  train::EvalResult ev = train::evaluate(trained, d.test);
  const int64_t params = models::count_parameters(trained);
  const distillation::EpochTerms last = res.terms.empty() ? distillation::EpochTerms{} : res.terms.back();
  if (r.count("json")) {
    nlohmann::json j;
    j["output"] = out;
    j["epochs"] = cfg.epochs;
    j["steps"] = res.train.steps;
    j["train_seconds"] = res.train.seconds;
    j["teacher_seconds"] = res.teacher_seconds;
    j["teacher_cached"] = res.teacher_cached;
    j["parameters"] = params;
    j["last_epoch_loss_terms"] = {{"cross_entropy", last.cross_entropy}, {"kd", last.kd}, {"hint", last.hint},
                                  {"attention", last.attention}, {"total", last.total}};
    const bool fmnist = r["data"].as<std::string>() == "fashion-mnist";
    j["test"] = nlohmann::json::parse(ev.to_json(fmnist ? data::fashion_mnist_class_names() : nullptr));
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("distilled %s into %s for %lld epochs (%lld steps) in %.1fs (teacher %s: %.1fs); saved %s\n",
                teacher_path.c_str(), student.description.c_str(), (long long)cfg.epochs, (long long)res.train.steps,
                res.train.seconds, res.teacher_cached ? "cached" : "run every step", res.teacher_seconds, out.c_str());
    std::printf("parameters %lld; last epoch: total %.4f, cross-entropy %.4f, kd %.4f, hint %.4f, attention %.6f\n",
                (long long)params, last.total, last.cross_entropy, last.kd, last.hint, last.attention);
    std::printf("test: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld samples)\n", 100 * ev.top1, 100 * ev.top5,
                ev.loss, (long long)ev.count);
  }
  return 0;
}

}  // namespace compress::cli
