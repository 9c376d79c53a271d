#include "compress/train/trainer.h"

#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "compress/archive_check.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/train/sync_batch_norm.h"
#include "compress/threads.h"

namespace compress::train {

using Clock = std::chrono::steady_clock;

static double process_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

std::vector<NamedTensor> named_parameters(const torch::jit::Module& m) {
  std::vector<NamedTensor> out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out.push_back({p.name, p.value});
  return out;
}

std::vector<NamedTensor> named_buffers(const torch::jit::Module& m) {
  std::vector<NamedTensor> out;
  for (const auto& b : m.named_buffers(/*recurse=*/true)) out.push_back({b.name, b.value});
  return out;
}

void seed_torch(uint64_t seed) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
}

namespace {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  int t = int(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof(buf), "%dh%02dm", t / 3600, (t / 60) % 60);
  else std::snprintf(buf, sizeof(buf), "%dm%02ds", t / 60, t % 60);
  return buf;
}

// A bar redrawn in place on a terminal; plain lines every few seconds in a
// log file (a carriage-return bar would fill logs with one giant line).
class Progress {
 public:
  Progress(bool quiet, double log_every_s) : quiet_(quiet), log_every_s_(log_every_s), tty_(::isatty(2)) {}

  void update(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, double loss, double acc,
              double samples_per_s, double eta_s, bool force = false) {
    if (quiet_) return;
    auto now = Clock::now();
    double since = std::chrono::duration<double>(now - last_).count();
    if (tty_) {
      if (!force && since < 0.2) return;
      const int width = 24;
      int filled = batches ? int(width * double(batch) / double(batches)) : width;
      std::string bar(size_t(filled), '#');
      bar += std::string(size_t(width - filled), '.');
      std::fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.2f%% %.0f samples/s ETA %s",
                   (long long)epoch + 1, (long long)epochs, bar.c_str(), (long long)batch, (long long)batches,
                   loss, 100 * acc, samples_per_s, format_duration(eta_s).c_str());
    } else {
      if (!force && since < log_every_s_) return;
      std::fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.2f%% %.0f samples/s ETA %s\n",
                   (long long)epoch + 1, (long long)epochs, (long long)batch, (long long)batches, loss, 100 * acc,
                   samples_per_s, format_duration(eta_s).c_str());
    }
    std::fflush(stderr);
    last_ = now;
  }

  void epoch_done(const EpochStats& s, int64_t epochs) {
    if (quiet_) return;
    if (tty_) std::fprintf(stderr, "\r\033[K");
    std::fprintf(stderr, "epoch %lld/%lld: loss %.4f acc %.2f%%", (long long)s.epoch + 1, (long long)epochs,
                 s.train_loss, 100 * s.train_acc);
    if (s.val) std::fprintf(stderr, " | val loss %.4f acc %.2f%%", s.val->loss, 100 * s.val->top1);
    std::fprintf(stderr, " | %.1fs, %.0f samples/s\n", s.seconds, s.samples_per_s);
    std::fflush(stderr);
  }

 private:
  bool quiet_;
  double log_every_s_;
  bool tty_;
  Clock::time_point last_{};
};

// Submodules whose class is a batch norm (torch.nn's BatchNorm1d/2d/3d, or
// the zoo's modules that mimic them).
std::vector<torch::jit::Module> batch_norm_modules(const torch::jit::Module& m) {
  std::vector<torch::jit::Module> out;
  for (const auto& sub : m.modules()) {
    const auto& name = sub.type()->name();
    if (name && name->qualifiedName().find("BatchNorm") != std::string::npos) out.push_back(sub);
  }
  return out;
}

std::vector<at::Tensor> values_of(const std::vector<NamedTensor>& v) {
  std::vector<at::Tensor> out;
  for (const auto& t : v) out.push_back(t.value);
  return out;
}

c10::Dict<std::string, at::Tensor> to_dict(const std::vector<NamedTensor>& v) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& t : v) d.insert(t.name, t.value);
  return d;
}

}  // namespace

Trainer::Trainer(torch::jit::Module module, TrainConfig cfg) : module_(std::move(module)), cfg_(std::move(cfg)) {
  if (cfg_.epochs <= 0) bad_input("epochs must be positive, got " + std::to_string(cfg_.epochs));
  if (cfg_.label_smoothing < 0 || cfg_.label_smoothing >= 1) bad_input("label smoothing must be in [0, 1)");
  if (cfg_.grad_clip < 0) bad_input("gradient clipping norm must not be negative");
  if (cfg_.batch_norm != "local" && cfg_.batch_norm != "frozen" && cfg_.batch_norm != "sync") {
    bad_input("batch norm mode '" + cfg_.batch_norm + "' is not local, frozen or sync");
  }
  if (cfg_.batch_norm == "sync" && cfg_.group) {
    int replaced = 0;
    sync_twin_ = with_sync_batch_norm(module_, &replaced);
    if (replaced == 0) bad_input("batch norm mode sync: the model has no batch norm (aten::batch_norm) to synchronise");
  }
  if (cfg_.batch_norm == "frozen" && batch_norm_modules(module_).empty()) {
    bad_input("batch norm mode frozen: the model has no BatchNorm submodules to freeze");
  }
  auto params = named_parameters(module_);
  if (params.empty()) bad_input("the model has no parameters to train");
  for (auto& p : params) p.value.set_requires_grad(true);
  optimizer_ = std::make_unique<Optimizer>(params, cfg_.optimizer);
  if (optimizer_->params().empty()) bad_input("every parameter of the model is frozen: nothing to train");
}

namespace {

constexpr const char* kCheckpointFormat = "compress-checkpoint-2";

// The shortest text that reads back as exactly `v`.
std::string num(double v) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string tensor_text(const at::Tensor& t) {
  if (!t.defined()) return "none";
  std::string out;
  at::Tensor flat = t.detach().to(at::kDouble).reshape({-1}).contiguous();
  for (int64_t i = 0; i < flat.numel(); ++i) out += (i ? "," : "") + num(flat[i].item<double>());
  return out;
}

// Every setting that changes what a run computes, as name -> value text. A
// checkpoint stores them and a resume with any of them different is refused.
// Settings an optimizer or schedule kind does not read are left out, so they
// cannot cause a refusal. (The model and data are named by cfg.fingerprint.)
std::vector<std::pair<std::string, std::string>> run_settings(const TrainConfig& c, int64_t samples,
                                                              int64_t batches) {
  const auto& o = c.optimizer;
  const auto& s = c.schedule;
  std::vector<std::pair<std::string, std::string>> v = {
      {"epochs", std::to_string(c.epochs)},
      {"batch size", std::to_string(c.batch_size)},
      {"training samples", std::to_string(samples)},
      {"batches per epoch", std::to_string(batches)},
      {"seed", std::to_string(c.seed)},
      {"optimizer", o.kind},
      {"learning rate", num(o.lr)},
      {"weight decay", num(o.weight_decay)},
      {"weight decay on 1-D tensors", o.decay_1d ? "true" : "false"},
      {"schedule", s.kind},
      {"warm-up steps", std::to_string(s.warmup_steps)},
      {"warm-up start factor", num(s.warmup_start_factor)},
      {"gradient clipping", num(c.grad_clip)},
      {"label smoothing", num(c.label_smoothing)},
      {"crop padding", std::to_string(c.augment.crop_padding)},
      {"horizontal flip", c.augment.horizontal_flip ? "true" : "false"},
      {"normalisation mean", tensor_text(c.mean)},
      {"normalisation std", tensor_text(c.std)},
  };
  if (o.kind == "sgd") {
    v.push_back({"momentum", num(o.momentum)});
    v.push_back({"nesterov", o.nesterov ? "true" : "false"});
  } else {
    v.push_back({"beta1", num(o.beta1)});
    v.push_back({"beta2", num(o.beta2)});
    v.push_back({"eps", num(o.eps)});
  }
  if (s.kind == "step") {
    v.push_back({"schedule step size", std::to_string(s.step_size)});
    v.push_back({"schedule gamma", num(s.gamma)});
  } else if (s.kind == "cosine") {
    v.push_back({"schedule minimum learning rate", num(s.min_lr)});
  }
  std::string groups;
  for (const auto& g : o.groups) {
    groups += (groups.empty() ? "" : "; ") + g.name + " [";
    for (size_t i = 0; i < g.match.size(); ++i) groups += (i ? " " : "") + g.match[i];
    groups += std::string("]") + (g.frozen ? " frozen" : "") + (g.lr ? " lr=" + num(*g.lr) : "") +
              (g.weight_decay ? " weight_decay=" + num(*g.weight_decay) : "");
  }
  v.push_back({"parameter groups", groups.empty() ? "none" : groups});
  // Listed only when not the default, so older checkpoints still resume.
  if (c.batch_norm != "local") v.push_back({"batch norm", c.batch_norm});
  return v;
}

// Reads the fields of a checkpoint, each checked for presence and type; any
// problem is one line naming the file and the field.
class Fields {
 public:
  Fields(std::string path, c10::impl::GenericDict d) : path_(std::move(path)), d_(std::move(d)) {}

  [[noreturn]] void refuse(const std::string& field, const std::string& problem) const {
    bad_input(path_ + ": bad checkpoint: field '" + field + "' " + problem);
  }
  c10::IValue get(const std::string& key) const {
    auto it = d_.find(key);
    if (it == d_.end()) refuse(key, "is missing");
    return it->value();
  }
  void expect(const std::string& key, const c10::IValue& v, bool ok, const char* want) const {
    if (!ok) refuse(key, std::string("should be ") + want + ", is " + v.tagKind());
  }
  std::string text(const std::string& key) const {
    const auto& v = get(key);
    expect(key, v, v.isString(), "a string");
    return v.toStringRef();
  }
  int64_t integer(const std::string& key, int64_t lo, int64_t hi) const {
    const auto& v = get(key);
    expect(key, v, v.isInt(), "an integer");
    const int64_t x = v.toInt();
    if (x < lo || x > hi) {
      refuse(key, "is " + std::to_string(x) + ", outside " + std::to_string(lo) + ".." + std::to_string(hi) +
                      " for this run");
    }
    return x;
  }
  double real(const std::string& key) const {
    const auto& v = get(key);
    expect(key, v, v.isDouble(), "a number");
    const double x = v.toDouble();
    if (!std::isfinite(x) || x < 0) refuse(key, "is " + num(x) + ", not a finite non-negative number");
    return x;
  }
  // A dictionary of string keys to `Value`s (string or tensor).
  std::map<std::string, c10::IValue> dict(const std::string& key, bool tensors) const {
    const auto& v = get(key);
    expect(key, v, v.isGenericDict(), "a dictionary");
    std::map<std::string, c10::IValue> out;
    for (const auto& kv : v.toGenericDict()) {
      if (!kv.key().isString()) refuse(key, "has a key that is not a string");
      const std::string name = key + "." + kv.key().toStringRef();
      if (tensors) {
        expect(name, kv.value(), kv.value().isTensor(), "a tensor");
        const at::Tensor& t = kv.value().toTensor();
        check_tensor_storage(t, path_ + ": bad checkpoint: field '" + name + "'");
        // Training on from NaN or infinite weights or optimizer state would
        // only diverge (fuzz_checkpoint found it): refuse them here, by name.
        if (t.is_floating_point() && !at::isfinite(t).all().item<bool>()) refuse(name, "holds NaN or infinite values");
      } else {
        expect(name, kv.value(), kv.value().isString(), "a string");
      }
      out.emplace(kv.key().toStringRef(), kv.value());
    }
    return out;
  }
  // Checks the tensors saved under `key` against `model` (same names, dtypes
  // and shapes, nothing more, nothing less).
  void match_tensors(const std::string& key, const std::vector<NamedTensor>& model) const {
    auto saved = dict(key, true);
    for (const auto& t : model) {
      auto it = saved.find(t.name);
      if (it == saved.end()) refuse(key + "." + t.name, "is missing");
      same_layout(key + "." + t.name, it->second.toTensor(), t.value);
      saved.erase(it);
    }
    if (!saved.empty()) refuse(key + "." + saved.begin()->first, "is not in the model");
  }
  void same_layout(const std::string& name, const at::Tensor& saved, const at::Tensor& want) const {
    if (saved.scalar_type() != want.scalar_type()) {
      refuse(name, std::string("has dtype ") + c10::toString(saved.scalar_type()) + ", the model's is " +
                       c10::toString(want.scalar_type()));
    }
    if (saved.sizes() != want.sizes()) {
      refuse(name, "has shape " + c10::str(saved.sizes()) + ", the model's is " + c10::str(want.sizes()));
    }
  }

 private:
  std::string path_;
  c10::impl::GenericDict d_;
};

}  // namespace

void Trainer::save_checkpoint(int64_t epoch, int64_t next_batch, int64_t step, double loss_sum, int64_t correct,
                              int64_t seen) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string(kCheckpointFormat));
  d.insert("fingerprint", cfg_.fingerprint);
  c10::Dict<std::string, std::string> settings;
  for (const auto& [k, v] : run_settings(cfg_, samples_, batches_)) settings.insert(k, v);
  d.insert("settings", settings);
  d.insert("epoch", epoch);
  d.insert("next_batch", next_batch);
  d.insert("step", step);
  d.insert("optimizer_steps", optimizer_->steps_taken());
  d.insert("loss_sum", loss_sum);
  d.insert("correct", correct);
  d.insert("seen", seen);
  // For information: the position above is global, so any number of ranks may resume.
  d.insert("world_size", int64_t(cfg_.group ? cfg_.group->world_size() : 1));
  d.insert("parameters", to_dict(named_parameters(module_)));
  d.insert("buffers", to_dict(named_buffers(module_)));
  d.insert("optimizer", to_dict(optimizer_->state()));
  std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(d));
  write_atomically(cfg_.checkpoint_path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    f.close();
    if (!f) failure(cfg_.checkpoint_path + ": cannot write checkpoint");
  });
}

// Everything is checked before anything is restored, so a refused checkpoint
// leaves the model and optimizer as they were.
bool Trainer::load_checkpoint(int64_t& epoch, int64_t& next_batch, int64_t& step, double& loss_sum,
                              int64_t& correct, int64_t& seen) {
  const std::string& path = cfg_.checkpoint_path;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  c10::IValue v;
  try {
    v = load_checked_pickle(bytes, "");
  } catch (const std::exception& e) {
    bad_input(path + ": not a readable checkpoint (" + first_line_of(e) + ")");
  }
  if (!v.isGenericDict()) bad_input(path + ": not a compress checkpoint");
  const Fields in(path, v.toGenericDict());

  const std::string format = in.text("format");
  if (format != kCheckpointFormat) {
    bad_input(path + ": checkpoint format '" + format + "' is not this version's (" + kCheckpointFormat +
              "); remove it to start over");
  }
  const std::string fingerprint = in.text("fingerprint");
  if (fingerprint != cfg_.fingerprint) {
    bad_input(path + ": checkpoint belongs to another run (" + fingerprint + "), not this one (" +
              cfg_.fingerprint + "); remove it or choose another checkpoint file");
  }
  auto saved = in.dict("settings", false);
  std::string differ;
  for (const auto& [k, now] : run_settings(cfg_, samples_, batches_)) {
    auto it = saved.find(k);
    const std::string then = it == saved.end() ? "unset" : it->second.toStringRef();
    if (then != now) differ += (differ.empty() ? "" : ", ") + k + " (checkpoint " + then + ", now " + now + ")";
    if (it != saved.end()) saved.erase(it);
  }
  for (const auto& [k, then] : saved) {
    differ += (differ.empty() ? "" : ", ") + k + " (checkpoint " + then.toStringRef() + ", now unset)";
  }
  if (!differ.empty()) {
    bad_input(path + ": checkpoint was written with other settings: " + differ +
              "; resume with the same settings or remove the checkpoint");
  }

  const int64_t e = in.integer("epoch", 0, cfg_.epochs);
  const int64_t nb = in.integer("next_batch", 0, e == cfg_.epochs ? 0 : batches_ - 1);
  const int64_t st = in.integer("step", 0, batches_ * cfg_.epochs);
  if (st != e * batches_ + nb) {
    in.refuse("step", "is " + std::to_string(st) + ", but epoch " + std::to_string(e) + " batch " +
                          std::to_string(nb) + " is step " + std::to_string(e * batches_ + nb));
  }
  in.integer("optimizer_steps", st, st);
  const int64_t sn = in.integer("seen", 0, nb * cfg_.batch_size);
  const int64_t co = in.integer("correct", 0, sn);
  const double ls = in.real("loss_sum");
  in.match_tensors("parameters", named_parameters(module_));
  in.match_tensors("buffers", named_buffers(module_));
  // Optimizer state: "<trained parameter>.buf1/.buf2", shaped like the parameter.
  std::vector<NamedTensor> opt;
  for (const auto& [name, t] : in.dict("optimizer", true)) {
    const NamedTensor* owner = nullptr;
    for (const auto& p : optimizer_->params()) {
      if (name == p.name + ".buf1" || name == p.name + ".buf2") owner = &p;
    }
    if (!owner) in.refuse("optimizer." + name, "is not the state of a trained parameter");
    in.same_layout("optimizer." + name, t.toTensor(), owner->value);
    opt.push_back({name, t.toTensor()});
  }

  auto restore = [&](const char* key, const std::vector<NamedTensor>& into) {
    auto tensors = in.dict(key, true);
    at::NoGradGuard no_grad;
    for (const auto& t : into) t.value.copy_(tensors.at(t.name).toTensor());
  };
  restore("parameters", named_parameters(module_));
  restore("buffers", named_buffers(module_));
  optimizer_->load_state(opt, st);
  epoch = e;
  next_batch = nb;
  step = st;
  loss_sum = ls;
  correct = co;
  seen = sn;
  return true;
}

bool Trainer::resume_distributed(int64_t& epoch, int64_t& next_batch, int64_t& step, double& loss_sum,
                                 int64_t& correct, int64_t& seen) {
  ProcessGroup& group = *cfg_.group;
  const bool root = group.rank() == 0;
  at::Tensor header = at::zeros({7}, at::kLong), sums = at::zeros({1}, at::kDouble);
  std::exception_ptr refused;
  bool bad = false;  // the refusal is bad input (exit code 2 on every rank)
  if (root) {
    bool found = false;
    try {
      found = load_checkpoint(epoch, next_batch, step, loss_sum, correct, seen);
    } catch (const Error& e) {
      refused = std::current_exception();
      bad = e.kind() == ErrorKind::BadInput;
    } catch (...) {
      refused = std::current_exception();
    }
    int64_t* h = header.data_ptr<int64_t>();
    h[0] = refused ? (bad ? 2 : 3) : found ? 1 : 0;
    h[1] = epoch, h[2] = next_batch, h[3] = step, h[4] = correct, h[5] = seen, h[6] = optimizer_->steps_taken();
    sums.data_ptr<double>()[0] = loss_sum;
  }
  group.broadcast({header, sums}, 0, "resume broadcast");  // the others learn whether rank 0 resumed
  if (refused) std::rethrow_exception(refused);
  const int64_t* h = header.data_ptr<int64_t>();
  if (h[0] >= 2) {
    const std::string why = "rank " + std::to_string(group.rank()) + ": rank 0 could not resume from " +
                            cfg_.checkpoint_path + " (its message says why); stopping";
    said_elsewhere(h[0] == 2 ? ErrorKind::BadInput : ErrorKind::Failure, why);
  }
  if (h[0] == 0) return false;
  epoch = h[1], next_batch = h[2], step = h[3], correct = h[4], seen = h[5];
  loss_sum = sums.data_ptr<double>()[0];
  // The optimizer's buffers: which exist (momentum appears with the first
  // step), then their values, in parameter order on every rank.
  const auto& params = optimizer_->params();
  std::map<std::string, at::Tensor> saved;
  for (const auto& t : optimizer_->state()) saved[t.name] = t.value;
  const char* kinds[] = {".buf1", ".buf2"};
  at::Tensor present = at::zeros({int64_t(2 * params.size())}, at::kLong);
  for (size_t i = 0; i < params.size(); ++i) {
    for (int k = 0; k < 2; ++k) present.data_ptr<int64_t>()[2 * i + k] = saved.count(params[i].name + kinds[k]);
  }
  group.broadcast({present}, 0, "resume broadcast");
  std::vector<NamedTensor> state;
  for (size_t i = 0; i < params.size(); ++i) {
    for (int k = 0; k < 2; ++k) {
      if (!present.data_ptr<int64_t>()[2 * i + k]) continue;
      const std::string name = params[i].name + kinds[k];
      state.push_back({name, root ? saved.at(name) : at::zeros_like(params[i].value).detach()});
    }
  }
  group.broadcast(values_of(state), 0, "resume broadcast");
  if (!root) optimizer_->load_state(state, h[6]);
  return true;
}

void Trainer::set_training_mode() {
  module_.train(true);
  if (sync_twin_) sync_twin_->train(true);
  if (cfg_.batch_norm == "frozen") {
    for (auto& bn : batch_norm_modules(module_)) bn.train(false);
  }
}

TrainResult Trainer::fit(const data::TensorDataset& train, const data::TensorDataset* val) {
  // The interpreter runs the graph as written: no profiling runs or
  // autodiff subgraphs, whose numerics could differ between the first steps of
  // a fresh process and later ones and so break resume == uninterrupted.
  torch::jit::GraphOptimizerEnabledGuard plain_interpreter(false);
  compress::ScopedThreads threads(cfg_.threads);

  data::LoaderOptions lo;
  lo.batch_size = cfg_.batch_size;
  lo.shuffle = true;
  lo.drop_last = train.size() > cfg_.batch_size;  // equal batch sizes keep BN statistics sane
  lo.seed = cfg_.seed;
  lo.augment = cfg_.augment;
  lo.mean = cfg_.mean;
  lo.std = cfg_.std;
  ProcessGroup* group = cfg_.group.get();
  const bool root = !group || group->rank() == 0;
  const bool writes_checkpoints = root && !cfg_.checkpoint_path.empty();
  if (group) {
    const int world = group->world_size();
    if (cfg_.batch_size % world != 0) {
      bad_input("batch size " + std::to_string(cfg_.batch_size) + " (the global batch) is not divisible by the " +
                std::to_string(world) + " processes");
    }
    if (train.size() < cfg_.batch_size) {
      bad_input(train.name + ": " + std::to_string(train.size()) + " samples are fewer than one global batch (" +
                std::to_string(cfg_.batch_size) + ")");
    }
    lo.shard = group->rank();
    lo.shards = world;
  }
  data::Loader loader(train, lo);
  const int64_t batches = loader.batches_per_epoch();
  const int64_t total_steps = batches * cfg_.epochs;
  batches_ = batches;  // for the checkpoints' settings and range checks
  samples_ = train.size();

  int64_t epoch = 0, next_batch = 0, step = 0, correct = 0, seen = 0;
  double loss_sum = 0;
  if (cfg_.resume && !cfg_.checkpoint_path.empty()) {
    const bool resumed = group ? resume_distributed(epoch, next_batch, step, loss_sum, correct, seen)
                               : load_checkpoint(epoch, next_batch, step, loss_sum, correct, seen);
    if (resumed && root && !cfg_.quiet) {
      std::fprintf(stderr, "resuming from %s at epoch %lld, step %lld\n", cfg_.checkpoint_path.c_str(),
                   (long long)epoch + 1, (long long)step);
    }
  }
  // Data-parallel: every rank starts from rank 0's weights; gradients are
  // averaged by the reducer; rank 0's buffers (BN running statistics) are
  // copied to all before each step, unless batch norms are frozen.
  std::unique_ptr<GradientReducer> reducer;
  std::vector<at::Tensor> buffers = values_of(named_buffers(module_));
  const bool broadcast_buffers = group && cfg_.batch_norm == "local" && !buffers.empty();
  // Synchronised batch norms reduce over the group while this lives.
  std::optional<SyncBatchNormScope> sync_scope;
  if (sync_twin_) sync_scope.emplace(cfg_.group);
  torch::jit::Module& forward_module = sync_twin_ ? *sync_twin_ : module_;
  if (group) {
    std::vector<at::Tensor> state = values_of(named_parameters(module_));
    state.insert(state.end(), buffers.begin(), buffers.end());
    group->broadcast(state, 0, "parameter broadcast");
    reducer = std::make_unique<GradientReducer>(cfg_.group, values_of(optimizer_->params()), cfg_.bucket_bytes,
                                                cfg_.overlap);
  }

  TrainResult result;
  Progress progress(cfg_.quiet || !root, cfg_.log_every_s);
  auto run_start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  int64_t steps_this_run = 0;
  set_training_mode();

  for (; epoch < cfg_.epochs; ++epoch) {
    auto epoch_start = Clock::now();
    int64_t epoch_samples = 0;
    loader.start_epoch(epoch, next_batch);
    while (auto batch = loader.next()) {
      StepContext ctx;
      ctx.module = &module_;
      ctx.optimizer = optimizer_.get();
      ctx.epoch = epoch;
      ctx.batch = batch->index;
      ctx.step = step;
      ctx.total_steps = total_steps;
      ctx.lr = lr_at(cfg_.schedule, cfg_.optimizer.lr, step, total_steps);
      ctx.inputs = batch->inputs;
      ctx.labels = batch->labels;
      ctx.indices = batch->indices;
      ctx.group = group;
      // Dropout draws from LibTorch's generator: reseed it per step so a
      // resumed run draws what the uninterrupted one drew; per rank, so the
      // ranks' masks differ (rank 0 draws what a single process draws).
      seed_torch(data::mix_seed(cfg_.seed, uint64_t(step), 0xD50Full + uint64_t(group ? group->rank() : 0)));
      if (broadcast_buffers) group->broadcast(buffers, 0, "buffer broadcast");

      ctx.logits = logits_of(forward_module.forward({ctx.inputs}), &ctx.features);
      if (loss_fn_) {
        ctx.loss = loss_fn_(ctx);
      } else {
        ctx.loss = at::cross_entropy_loss(ctx.logits, ctx.labels, {}, at::Reduction::Mean, -100,
                                          cfg_.label_smoothing);
      }
      for (auto& cb : callbacks_) cb->on_loss(ctx);
      optimizer_->zero_grad();
      ctx.loss.backward();
      if (reducer) reducer->finish();  // gradients are now the average over all ranks
      for (auto& cb : callbacks_) cb->after_backward(ctx);
      if (cfg_.grad_clip > 0) clip_grad_norm(optimizer_->params(), cfg_.grad_clip);
      optimizer_->step(ctx.lr);
      for (auto& cb : callbacks_) cb->after_step(ctx);

      double l = ctx.loss.item<double>();
      int64_t n = ctx.labels.size(0);
      int64_t n_correct = ctx.logits.detach().argmax(1).eq(ctx.labels).sum().item<int64_t>();
      if (group) {  // the statistics of the global batch
        at::Tensor sums = at::tensor({l * double(n), double(n_correct), double(n)}, at::kDouble);
        group->all_reduce_sum(sums, "statistics all-reduce");
        const double* v = sums.data_ptr<double>();
        n = int64_t(v[2]);
        n_correct = int64_t(v[1]);
        l = v[0] / v[2];
      }
      if (!std::isfinite(l)) {
        failure("training diverged at epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(step) +
                " (loss is " + std::to_string(l) + "); lower the learning rate or clip gradients");
      }
      loss_sum += l * double(n);
      correct += n_correct;
      seen += n;
      epoch_samples += n;
      ++step;
      ++steps_this_run;
      next_batch = batch->index + 1;

      double elapsed = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      double sps = elapsed > 0 ? double(epoch_samples) / elapsed : 0;
      double run_elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
      double eta = double(total_steps - step) * run_elapsed / double(steps_this_run);
      progress.update(epoch, cfg_.epochs, next_batch, batches, loss_sum / double(seen), double(correct) / double(seen),
                      sps, eta);

      const bool stop_now = cfg_.stop_after_steps >= 0 && step >= cfg_.stop_after_steps;
      const bool periodic = cfg_.checkpoint_every_steps > 0 && step % cfg_.checkpoint_every_steps == 0;
      if (writes_checkpoints && (stop_now || periodic) && next_batch < batches) {
        save_checkpoint(epoch, next_batch, step, loss_sum, correct, seen);
      }
      if (stop_now && next_batch < batches) {
        result.stopped_early = true;
        break;
      }
    }
    if (result.stopped_early) break;

    EpochStats s;
    s.epoch = epoch;
    s.train_loss = seen ? loss_sum / double(seen) : 0;
    s.train_acc = seen ? double(correct) / double(seen) : 0;
    s.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    s.samples_per_s = s.seconds > 0 ? double(epoch_samples) / s.seconds : 0;
    if (val) {
      // Every rank evaluates (same result), so none waits for rank 0 long
      // enough to take it for dead.
      s.val = evaluate(module_, *val, 500, cfg_.mean, cfg_.std);
      set_training_mode();
    }
    next_batch = 0;
    loss_sum = 0;
    correct = 0;
    seen = 0;
    if (writes_checkpoints) save_checkpoint(epoch + 1, 0, step, 0, 0, 0);
    progress.epoch_done(s, cfg_.epochs);
    for (auto& cb : callbacks_) cb->on_epoch_end(s);
    result.history.push_back(s);
    if (cfg_.stop_after_steps >= 0 && step >= cfg_.stop_after_steps && epoch + 1 < cfg_.epochs) {
      result.stopped_early = true;
      break;
    }
  }
  result.steps = step;
  result.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  result.cpu_seconds = process_cpu_seconds() - cpu_start;
  module_.train(false);
  if (sync_twin_) sync_twin_->train(false);
  return result;
}

}  // namespace compress::train
