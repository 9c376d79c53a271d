#include "compress/distillation/distill.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <sstream>

#include "compress/distillation/losses.h"
#include "compress/error.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/threads.h"

namespace compress::distillation {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kAdapterPrefix = "distill_adapter_";

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

// Index of `name` in `names`, appending it when new (taps are unique).
size_t tap_index(std::vector<std::string>& names, const std::string& name) {
  auto it = std::find(names.begin(), names.end(), name);
  if (it != names.end()) return size_t(it - names.begin());
  names.push_back(name);
  return names.size() - 1;
}

// Runs a model on `input` in eval mode without autograd; a model that cannot
// run on it is bad input naming the role and the shape.
at::Tensor logits_on(torch::jit::Module& m, const at::Tensor& input, const std::string& role) {
  at::NoGradGuard no_grad;
  const bool was_training = m.is_training();
  m.eval();
  c10::IValue out;
  try {
    out = m.forward({input});
  } catch (const c10::Error& e) {
    bad_input(role + " does not run on input " + shape_text(input.sizes().vec()) + ": " + first_line_of(e));
  }
  m.train(was_training);
  return train::logits_of(out);
}

// Mean of each loss term over an epoch's steps, weighted by batch size.
class TermAverages : public train::Callback {
 public:
  explicit TermAverages(std::vector<EpochTerms>* out) : out_(out) {}
  void add(const EpochTerms& t, int64_t n) {
    sum_.cross_entropy += t.cross_entropy * double(n);
    sum_.kd += t.kd * double(n);
    sum_.hint += t.hint * double(n);
    sum_.attention += t.attention * double(n);
    sum_.extra += t.extra * double(n);
    sum_.total += t.total * double(n);
    count_ += n;
  }
  void on_epoch_end(const train::EpochStats&) override {
    const double n = std::max<double>(1, double(count_));
    out_->push_back(
        {sum_.cross_entropy / n, sum_.kd / n, sum_.hint / n, sum_.attention / n, sum_.extra / n, sum_.total / n});
    sum_ = {};
    count_ = 0;
  }

 private:
  std::vector<EpochTerms>* out_;
  EpochTerms sum_;
  int64_t count_ = 0;
};

}  // namespace

Loss parse_loss(const std::string& name) {
  if (name == "kd") return Loss::KD;
  if (name == "fitnet") return Loss::FitNet;
  if (name == "at") return Loss::Attention;
  bad_input("unknown distillation loss '" + name + "' (kd, fitnet or at)");
}

const char* loss_name(Loss loss) {
  switch (loss) {
    case Loss::KD: return "kd";
    case Loss::FitNet: return "fitnet";
    case Loss::Attention: return "at";
  }
  return "?";
}

FeaturePair parse_feature_pair(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size() || text.find('=', eq + 1) != std::string::npos) {
    bad_input("--feature '" + text + "': expected STUDENT_VALUE=TEACHER_VALUE (value names: compress inspect --graph)");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

void DistillOptions::validate() const {
  if (!(temperature > 0) || !std::isfinite(temperature)) {
    bad_input("temperature must be a positive number, got " + std::to_string(temperature));
  }
  if (!(alpha >= 0 && alpha <= 1)) bad_input("alpha must be in [0, 1], got " + std::to_string(alpha));
  if (!(hint_weight >= 0) || !std::isfinite(hint_weight)) bad_input("hint weight must be a non-negative number");
  if (!(at_beta >= 0) || !std::isfinite(at_beta)) bad_input("attention-transfer beta must be a non-negative number");
  if (adapter_lr && !(*adapter_lr > 0)) bad_input("adapter learning rate must be positive");
  if (losses.empty()) bad_input("no distillation loss chosen (kd, fitnet or at)");
  const bool feature_loss = std::any_of(losses.begin(), losses.end(), [](Loss l) { return l != Loss::KD; });
  if (feature_loss && features.empty()) {
    bad_input("the fitnet and at losses compare features: give at least one --feature STUDENT_VALUE=TEACHER_VALUE");
  }
  if (!feature_loss && !features.empty()) bad_input("feature pairs are only used by the fitnet and at losses");
}

std::string DistillOptions::describe() const {
  std::ostringstream o;
  o.precision(17);
  o << "losses=";
  for (size_t i = 0; i < losses.size(); ++i) o << (i ? "," : "") << loss_name(losses[i]);
  o << " T=" << temperature << " alpha=" << alpha << " hint_weight=" << hint_weight << " at_beta=" << at_beta
    << " adapter_lr=" << (adapter_lr ? std::to_string(*adapter_lr) : "default") << " features=";
  for (size_t i = 0; i < features.size(); ++i) o << (i ? "," : "") << features[i].student << "=" << features[i].teacher;
  return o.str();
}

bool Distiller::uses(Loss l) const {
  return std::find(options_.losses.begin(), options_.losses.end(), l) != options_.losses.end();
}

Distiller::Distiller(torch::jit::Module teacher, Graph student, DistillOptions options,
                     std::vector<int64_t> input_shape)
    : student_(std::move(student)), options_(std::move(options)) {
  options_.validate();
  if (input_shape.empty()) bad_input("distillation needs the shape of one input sample");
  std::vector<int64_t> one = input_shape;
  one.insert(one.begin(), 1);
  student_.set_example_inputs({InputSpec{one}});

  std::vector<std::string> student_taps, teacher_taps;
  for (const auto& p : options_.features) {
    tap_index(student_taps, p.student);
    tap_index(teacher_taps, p.teacher);
  }
  if (options_.features.empty()) {
    teacher_ = teacher;
  } else {
    Graph teacher_graph = import_module(teacher);
    teacher_graph.set_example_inputs({InputSpec{one}});
    check_shapes(teacher_graph);
    ExportOptions eo;
    eo.taps = teacher_taps;
    teacher_ = export_module(teacher_graph, eo);
  }
  teacher_.eval();
  for (const auto& p : teacher_.parameters(/*recurse=*/true)) p.set_requires_grad(false);

  ExportOptions eo;
  eo.taps = student_taps;
  training_ = export_module(student_, eo);

  // Output shapes, on a batch of two (batch norm in eval mode accepts one, but
  // a model that mixes samples would hide behind a batch of one).
  std::vector<int64_t> two = input_shape;
  two.insert(two.begin(), 2);
  const at::Tensor probe = at::zeros(two);
  const at::Tensor t = logits_on(teacher_, probe, "the teacher");
  const at::Tensor s = logits_on(training_, probe, "the student");
  if (t.sizes() != s.sizes()) {
    bad_input("teacher and student outputs differ in shape: teacher " + shape_text(t.sizes().vec()) + ", student " +
              shape_text(s.sizes().vec()) + " (they must predict the same classes)");
  }

  if (uses(Loss::FitNet)) {
    // One adapter per pair: a 1x1 convolution (4-D) or a linear map on the
    // last dim, student channels -> teacher channels. The identity when the
    // widths match; PyTorch's default uniform init otherwise. Drawn from a
    // fixed seed so that a run is reproducible.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0x4D15711Cull);
    for (size_t i = 0; i < options_.features.size(); ++i) {
      const Shape& ss = student_.shape(student_.value_named(options_.features[i].student));
      const int rank = int(ss.size());
      const int64_t cin = rank == 4 ? ss[1] : ss.back();
      Adapter a;
      a.rank = rank;
      a.weight = kAdapterPrefix + std::to_string(i) + "_weight";
      a.bias = kAdapterPrefix + std::to_string(i) + "_bias";
      const int64_t cout = adapter_out_channels_[i];
      std::vector<int64_t> wshape = rank == 4 ? std::vector<int64_t>{cout, cin, 1, 1} : std::vector<int64_t>{cout, cin};
      at::Tensor w;
      if (cin == cout) w = at::eye(cout).reshape(wshape);
      else w = at::empty(wshape).uniform_(-1.0 / std::sqrt(double(cin)), 1.0 / std::sqrt(double(cin)), gen);
      training_.register_parameter(a.weight, w, /*is_buffer=*/false);
      training_.register_parameter(a.bias, at::zeros({cout}), /*is_buffer=*/false);
      adapters_.push_back(a);
    }
  }
  for (const auto& p : options_.features) {
    student_tap_.push_back(tap_index(student_taps, p.student));
    teacher_tap_.push_back(tap_index(teacher_taps, p.teacher));
  }
}

void Distiller::check_shapes(const Graph& teacher_graph) {
  for (const auto& p : options_.features) {
    const Shape ss = student_.shape(student_.value_named(p.student, "student feature"));
    const Shape ts = teacher_graph.shape(teacher_graph.value_named(p.teacher, "teacher feature"));
    const std::string pair = "--feature " + p.student + "=" + p.teacher + ": student value is " + shape_text(ss) +
                             ", teacher value is " + shape_text(ts);
    if (uses(Loss::FitNet)) {
      // Everything but the channel dim must agree: dim 1 of [N, C, H, W], the
      // last of [N, F] and [N, L, F].
      const size_t rank = ss.size();
      bool ok = rank == ts.size() && rank >= 2 && rank <= 4;
      if (ok) {
        const size_t channel = rank == 4 ? 1 : rank - 1;
        for (size_t d = 1; d < rank; ++d) ok = ok && (d == channel || ss[d] == ts[d]);
      }
      if (!ok) bad_input(pair + ": a FitNet hint needs the same rank (2 to 4) and sizes except the channels");
      adapter_out_channels_.push_back(rank == 4 ? ts[1] : ts.back());
    }
    if (uses(Loss::Attention)) {
      if (ss.size() != 4 || ts.size() != 4 || ss[2] != ts[2] || ss[3] != ts[3]) {
        bad_input(pair + ": attention transfer needs [N, C, H, W] values of the same spatial size");
      }
    }
  }
}

at::Tensor Distiller::adapt(size_t pair, const at::Tensor& feature) const {
  const Adapter& a = adapters_.at(pair);
  const at::Tensor w = training_.attr(a.weight).toTensor(), b = training_.attr(a.bias).toTensor();
  return a.rank == 4 ? at::conv2d(feature, w, b) : at::linear(feature, w, b);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Distiller::adapter_shapes() const {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& a : adapters_) {
    for (const auto& name : {a.weight, a.bias}) out.push_back({name, training_.attr(name).toTensor().sizes().vec()});
  }
  return out;
}

torch::jit::Module Distiller::student_module() const {
  torch::jit::Module m = export_module(student_);
  m.eval();
  return m;
}

DistillResult Distiller::fit(const data::TensorDataset& train, train::TrainConfig cfg,
                             const data::TensorDataset* val) {
  DistillResult result;
  if (!adapters_.empty()) {
    train::ParamGroup g;
    g.name = "hint adapters";
    g.match = {std::string(kAdapterPrefix) + "*"};
    g.lr = options_.adapter_lr;
    g.weight_decay = 0.0;
    cfg.optimizer.groups.insert(cfg.optimizer.groups.begin(), g);
  }
  cfg.optimizer.groups.insert(cfg.optimizer.groups.begin(), extra_groups_.begin(), extra_groups_.end());
  cfg.fingerprint += " | distill " + options_.describe();

  const bool plain_batches =
      cfg.augment.crop_padding <= 0 && !cfg.augment.horizontal_flip && !cfg.mean.defined();
  if (options_.cache == TeacherCache::On && !plain_batches) {
    bad_input("caching the teacher's outputs needs batches without augmentation or normalisation");
  }
  // Bytes of the teacher's outputs for the whole set: one probe sample's
  // outputs times the set size.
  std::vector<int64_t> sample(train.inputs.sizes().begin() + 1, train.inputs.sizes().end());
  int64_t per_sample = 0;
  {
    std::vector<at::Tensor> feats;
    at::NoGradGuard no_grad;
    std::vector<int64_t> one = sample;
    one.insert(one.begin(), 1);
    per_sample = train::logits_of(teacher_.forward({at::zeros(one)}), &feats).numel();
    for (const auto& f : feats) per_sample += f.numel();
  }
  const bool cache = options_.cache == TeacherCache::On ||
                     (options_.cache == TeacherCache::Auto && plain_batches &&
                      per_sample * 4 * train.size() <= options_.cache_limit_bytes);

  std::vector<at::Tensor> cached;  // logits, then each teacher tap, over the whole set
  if (cache) {
    compress::ScopedThreads threads(cfg.threads);
    auto start = Clock::now();
    at::NoGradGuard no_grad;
    std::vector<std::vector<at::Tensor>> parts;
    // The training batch size: the fill pass then costs what the per-step
    // teacher forwards of one epoch would (batches of 500 took 1.2-1.3x as
    // long on one core for the zoo resnet: bench/distill_speed.sh).
    const int64_t chunk = std::max<int64_t>(1, cfg.batch_size);
    for (int64_t i = 0; i < train.size(); i += chunk) {
      std::vector<at::Tensor> feats;
      at::Tensor x = train.inputs.narrow(0, i, std::min<int64_t>(chunk, train.size() - i));
      feats.insert(feats.begin(), train::logits_of(teacher_.forward({x}), &feats));
      if (parts.empty()) parts.resize(feats.size());
      for (size_t k = 0; k < feats.size(); ++k) parts[k].push_back(feats[k]);
    }
    for (auto& p : parts) cached.push_back(at::cat(p));
    result.teacher_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }
  result.teacher_cached = cache;

  auto averages = std::make_shared<TermAverages>(&result.terms);
  double* teacher_seconds = &result.teacher_seconds;
  const double label_smoothing = cfg.label_smoothing;
  train::Trainer trainer(training_, cfg);
  trainer.add_callback(averages);
  for (const auto& cb : callbacks_) trainer.add_callback(cb);
  trainer.set_loss([&, teacher_seconds](train::StepContext& ctx) {
    at::Tensor teacher_logits;
    std::vector<at::Tensor> teacher_feats;
    if (cache) {
      teacher_logits = cached[0].index_select(0, ctx.indices);
      for (size_t k = 1; k < cached.size(); ++k) teacher_feats.push_back(cached[k].index_select(0, ctx.indices));
    } else {
      auto start = Clock::now();
      at::NoGradGuard no_grad;
      teacher_logits = train::logits_of(teacher_.forward({ctx.inputs}), &teacher_feats);
      *teacher_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    }
    EpochTerms t;
    at::Tensor ce = at::cross_entropy_loss(ctx.logits, ctx.labels, {}, at::Reduction::Mean, -100, label_smoothing);
    at::Tensor loss;
    t.cross_entropy = ce.item<double>();
    if (uses(Loss::KD)) {
      at::Tensor kd = kd_loss(ctx.logits, teacher_logits, options_.temperature);
      t.kd = kd.item<double>();
      loss = options_.alpha * kd + (1 - options_.alpha) * ce;
    } else {
      loss = ce;
    }
    for (size_t i = 0; i < options_.features.size(); ++i) {
      const at::Tensor& s = ctx.features.at(student_tap_[i]);
      const at::Tensor& f = teacher_feats.at(teacher_tap_[i]);
      if (uses(Loss::FitNet)) {
        at::Tensor hint = at::mse_loss(adapt(i, s), f);
        t.hint += hint.item<double>();
        loss = loss + options_.hint_weight * hint;
      }
      if (uses(Loss::Attention)) {
        at::Tensor att = attention_loss(s, f);
        t.attention += att.item<double>();
        loss = loss + (options_.at_beta / 2) * att;
      }
    }
    if (extra_loss_) {
      at::Tensor extra = extra_loss_(ctx);
      t.extra = extra.item<double>();
      loss = loss + extra;
    }
    t.total = loss.item<double>();
    averages->add(t, ctx.labels.size(0));
    return loss;
  });
  result.train = trainer.fit(train, val);

  // The trained weights back into the student's graph (not the adapters or
  // other tensors registered on the training module only).
  update_from_module(student_, training_);
  return result;
}

}  // namespace compress::distillation
