// Magnitude masks for unstructured, 1xB block and N:M sparsity, the AGP
// schedule and the trainer callback that keeps masks applied (sparsity.h).
#include "compress/pruning/sparsity.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "compress/archive_check.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ops/ops.h"

namespace compress::sparsity {

namespace {

std::string fmt_double(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 3 || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
  out = std::stoll(s);
  return true;
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// GEMM rows with K padded with zeros to a multiple of `m`.
at::Tensor padded_rows(const at::Tensor& weight, int64_t m) {
  at::Tensor rows = gemm_rows(weight.detach().to(at::kFloat));
  const int64_t k = rows.size(1), pad = round_up(k, m) - k;
  return pad ? at::constant_pad_nd(rows, {0, pad}, 0) : rows;
}

// Undoes padded_rows on a [rows, k_pad] mask.
at::Tensor unpad_mask(const at::Tensor& rows_mask, const at::Tensor& weight) {
  const int64_t k = weight.numel() / weight.size(0);
  return from_gemm_rows(rows_mask.narrow(1, 0, k).contiguous(), weight.sizes());
}

// One layer's pruning units: a score per unit (the smallest are pruned
// first) and how a keep-flag per unit becomes the weight's mask.
struct Units {
  at::Tensor scores;  // float [units]
  std::function<at::Tensor(const at::Tensor& keep)> mask_of;
};

Units units_of(const at::Tensor& weight, const Pattern& p) {
  Units u;
  if (p.kind == PatternKind::Unstructured) {
    u.scores = weight.detach().to(at::kFloat).abs().flatten();
    at::Tensor w = weight;
    u.mask_of = [w](const at::Tensor& keep) { return keep.view(w.sizes()); };
  } else if (p.kind == PatternKind::Block) {
    at::Tensor rows = padded_rows(weight, p.block);
    const int64_t r = rows.size(0), blocks = rows.size(1) / p.block;
    u.scores = rows.view({r, blocks, p.block}).pow(2).sum(-1).flatten();
    at::Tensor w = weight;
    const int64_t b = p.block;
    u.mask_of = [w, r, blocks, b](const at::Tensor& keep) {
      return unpad_mask(keep.view({r, blocks, 1}).expand({r, blocks, b}).reshape({r, blocks * b}), w);
    };
  } else {
    // A unit is a group of M; pruning it keeps its N largest. Its score is
    // the magnitude that removes, so the cheapest groups go first.
    at::Tensor g = padded_rows(weight, p.m).abs();
    const int64_t r = g.size(0), groups = g.size(1) / p.m;
    g = g.view({r, groups, p.m});
    at::Tensor top = std::get<1>(g.topk(p.n, -1));
    at::Tensor nm = at::zeros_like(g, at::kBool).scatter_(-1, top, true);
    u.scores = (g.sum(-1) - (g * nm).sum(-1)).flatten();
    at::Tensor w = weight;
    const int64_t m = p.m;
    u.mask_of = [w, r, groups, m, nm](const at::Tensor& keep) {
      at::Tensor dense = keep.view({r, groups, 1}).expand({r, groups, m});
      return unpad_mask(at::logical_or(dense, nm).reshape({r, groups * m}), w);
    };
  }
  return u;
}

// Keep-flags of `scores` with the `pruned` smallest cleared (ties: first index first).
at::Tensor keep_largest(const at::Tensor& scores, int64_t pruned) {
  at::Tensor keep = at::ones({scores.numel()}, at::kBool);
  if (pruned <= 0) return keep;
  at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  keep.index_fill_(0, order.narrow(0, 0, std::min<int64_t>(pruned, scores.numel())), false);
  return keep;
}

bool module_matches(const std::string& module, const std::string& prefix) {
  return module == prefix || (module.size() > prefix.size() && module.compare(0, prefix.size(), prefix) == 0 &&
                              module[prefix.size()] == '.');
}

}  // namespace

std::string Pattern::name() const {
  switch (kind) {
    case PatternKind::Unstructured: return "unstructured";
    case PatternKind::Block: return "1x" + std::to_string(block);
    case PatternKind::NofM: return std::to_string(n) + ":" + std::to_string(m);
  }
  return "?";
}

double Pattern::max_sparsity() const {
  return kind == PatternKind::NofM ? 1.0 - double(n) / double(m) : 1.0;
}

Pattern parse_pattern(const std::string& text) {
  Pattern p;
  if (text == "unstructured") return p;
  const auto x = text.find('x'), colon = text.find(':');
  int64_t a = 0, b = 0;
  if (x != std::string::npos && text.substr(0, x) == "1" && parse_int(text.substr(x + 1), b) && b >= 1 && b <= 64) {
    p.kind = PatternKind::Block;
    p.block = b;
    return p;
  }
  if (colon != std::string::npos && parse_int(text.substr(0, colon), a) && parse_int(text.substr(colon + 1), b) &&
      a >= 1 && a < b && b <= 64) {
    p.kind = PatternKind::NofM;
    p.n = a;
    p.m = b;
    return p;
  }
  bad_input("unknown sparsity pattern '" + text +
            "' (expected unstructured, 1xB such as 1x4, or N:M with 0 < N < M such as 2:4)");
}

at::Tensor gemm_rows(const at::Tensor& weight) {
  if (weight.dim() == 4) return weight.permute({0, 2, 3, 1}).reshape({weight.size(0), -1});
  return weight.reshape({weight.size(0), -1});
}

at::Tensor from_gemm_rows(const at::Tensor& rows, at::IntArrayRef shape) {
  if (shape.size() == 4) return rows.reshape({shape[0], shape[2], shape[3], shape[1]}).permute({0, 3, 1, 2}).contiguous();
  return rows.reshape(shape).contiguous();
}

std::vector<SparseLayer> select_layers(const Graph& g, const LayerSelection& sel,
                                       std::vector<std::pair<std::string, std::string>>* skipped) {
  std::vector<const Node*> layers;
  for (const Node* n : g.node_list())
    if ((n->is_leaf(LeafKind::Conv2d) || n->is_leaf(LeafKind::Linear)) && n->params.count("weight")) layers.push_back(n);
  std::vector<std::string> names;
  for (const Node* n : layers) names.push_back(n->module);
  for (const auto& e : sel.exclude) {
    bool found = false;
    for (const Node* n : layers) found = found || module_matches(n->module, e) || n->params.at("weight") == e;
    if (!found) {
      const std::string near = closest_name(e, names);
      bad_input("--exclude " + e + ": no conv or linear layer by that name" +
                (near.empty() ? "" : " (did you mean " + near + "?)"));
    }
  }
  std::vector<SparseLayer> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Node* n = layers[i];
    auto skip = [&](const std::string& why) {
      if (skipped) skipped->push_back({n->module, why});
    };
    const bool conv = n->is_leaf(LeafKind::Conv2d);
    if (conv && std::get<ConvAttrs>(n->attrs).groups != 1) {
      skip("grouped / depthwise convolution: few weights and no sparse kernel");
      continue;
    }
    if (!sel.include_first_last && i == 0) {
      skip("first layer (reads the input; --include-first-last prunes it)");
      continue;
    }
    if (!sel.include_first_last && i + 1 == layers.size() && layers.size() > 1) {
      skip("last layer (the classifier; --include-first-last prunes it)");
      continue;
    }
    bool excluded = false;
    for (const auto& e : sel.exclude) excluded = excluded || module_matches(n->module, e) || n->params.at("weight") == e;
    if (excluded) {
      skip("excluded");
      continue;
    }
    SparseLayer l;
    l.module = n->module;
    l.weight = n->params.at("weight");
    l.conv = conv;
    const at::Tensor& w = g.param(l.weight);
    l.shape = w.sizes().vec();
    l.rows = w.size(0);
    l.k = w.numel() / std::max<int64_t>(w.size(0), 1);
    out.push_back(l);
  }
  return out;
}

std::vector<NamedWeight> graph_weights(const Graph& g, const std::vector<SparseLayer>& layers) {
  std::vector<NamedWeight> out;
  for (const auto& l : layers) out.push_back({l.weight, g.param(l.weight)});
  return out;
}

std::vector<NamedWeight> module_weights(const torch::jit::Module& m, const std::vector<SparseLayer>& layers) {
  std::map<std::string, at::Tensor> params;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) params[p.name] = p.value;
  std::vector<NamedWeight> out;
  for (const auto& l : layers) {
    auto it = params.find(l.weight);
    if (it == params.end()) bad_input("the model has no parameter " + l.weight);
    out.push_back({l.weight, it->second});
  }
  return out;
}

void check_sparsity(double sparsity, const Pattern& pattern, bool global) {
  if (!(sparsity >= 0 && sparsity < 1))
    bad_input("sparsity " + fmt_double(sparsity) + " is outside [0, 1)");
  if (sparsity > pattern.max_sparsity() + 1e-9)
    bad_input("sparsity " + fmt_double(sparsity) + " is above what " + pattern.name() + " allows (keeps " +
              std::to_string(pattern.n) + " of every " + std::to_string(pattern.m) + ": at most " +
              fmt_double(pattern.max_sparsity()) + ")");
  if (global && pattern.kind == PatternKind::NofM)
    bad_input("global ranking does not apply to " + pattern.name() + " (every group keeps " +
              std::to_string(pattern.n) + " of " + std::to_string(pattern.m) + " on its own)");
}

Masks magnitude_masks(const std::vector<NamedWeight>& weights, double sparsity, const Pattern& pattern, bool global) {
  check_sparsity(sparsity, pattern, global);
  torch::NoGradGuard no_grad;
  // N:M prunes this fraction of the groups (all of them at max_sparsity).
  const double fraction = std::min(1.0, sparsity / pattern.max_sparsity());
  std::vector<Units> units;
  for (const auto& w : weights) units.push_back(units_of(w.weight, pattern));
  std::vector<at::Tensor> keeps;
  if (global && !units.empty()) {
    std::vector<at::Tensor> all;
    for (const auto& u : units) all.push_back(u.scores);
    at::Tensor cat = at::cat(all);
    at::Tensor keep = keep_largest(cat, std::llround(fraction * double(cat.numel())));
    int64_t at = 0;
    for (const auto& u : units) {
      keeps.push_back(keep.narrow(0, at, u.scores.numel()));
      at += u.scores.numel();
    }
  } else {
    for (const auto& u : units) keeps.push_back(keep_largest(u.scores, std::llround(fraction * double(u.scores.numel()))));
  }
  Masks masks;
  for (size_t i = 0; i < weights.size(); ++i) masks[weights[i].name] = units[i].mask_of(keeps[i]).contiguous();
  return masks;
}

void check_masks(const std::vector<NamedWeight>& weights, const Masks& masks) {
  std::map<std::string, const at::Tensor*> by_name;
  std::vector<std::string> names;
  for (const auto& w : weights) {
    by_name[w.name] = &w.weight;
    names.push_back(w.name);
  }
  for (const auto& kv : masks) {
    auto it = by_name.find(kv.first);
    if (it == by_name.end()) {
      const std::string near = closest_name(kv.first, names);
      bad_input("mask '" + kv.first + "' names no prunable conv/linear weight of the model" +
                (near.empty() ? "" : " (did you mean " + near + "?)"));
    }
    const at::Tensor& m = kv.second;
    if (!m.defined() || m.sizes() != it->second->sizes()) {
      std::ostringstream os;
      os << "mask '" << kv.first << "' has shape " << (m.defined() ? m.sizes() : at::IntArrayRef{}) << " but the weight has "
         << it->second->sizes();
      bad_input(os.str());
    }
    if (m.scalar_type() != at::kBool) {
      if (!(m.is_floating_point() || at::isIntegralType(m.scalar_type(), false)) ||
          !at::logical_or(m.eq(0), m.eq(1)).all().item<bool>())
        bad_input("mask '" + kv.first + "' holds values other than 0 and 1");
    }
  }
}

void apply_masks(const std::vector<NamedWeight>& weights, const Masks& masks) {
  torch::NoGradGuard no_grad;
  for (const auto& w : weights) {
    auto it = masks.find(w.name);
    if (it == masks.end()) continue;
    w.weight.mul_(it->second.ne(0).to(w.weight.scalar_type()));
  }
}

void save_masks(const Masks& masks, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& kv : masks) dict.insert(kv.first, kv.second.ne(0).contiguous());
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(dict));
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) failure("cannot write " + tmp);
  });
}

Masks load_masks(const std::string& path) {
  require_input_file(path);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue v;
  try {
    v = load_checked_pickle(bytes, path + ": not a mask file");
  } catch (const Error&) {
    throw;  // one line naming the file and the problem
  } catch (const std::exception& e) {
    bad_input(path + ": not a mask file (a pickled dict of weight name -> bool tensor, as --save-masks writes): " +
              first_line_of(e));
  }
  if (!v.isGenericDict()) bad_input(path + ": not a mask file (expected a dict of weight name -> bool tensor)");
  Masks masks;
  for (const auto& kv : v.toGenericDict()) {
    if (!kv.key().isString() || !kv.value().isTensor())
      bad_input(path + ": not a mask file (expected a dict of weight name -> bool tensor)");
    check_tensor_storage(kv.value().toTensor(), path + ": mask '" + kv.key().toStringRef() + "'");
    masks[kv.key().toStringRef()] = kv.value().toTensor();
  }
  if (masks.empty()) bad_input(path + ": the mask file holds no masks");
  return masks;
}

WeightSparsity measure(const at::Tensor& weight) {
  torch::NoGradGuard no_grad;
  WeightSparsity s;
  at::Tensor nz = weight.detach().ne(0);
  s.numel = weight.numel();
  s.zeros = s.numel - nz.sum().item<int64_t>();
  s.sparsity = s.numel ? double(s.zeros) / double(s.numel) : 0.0;
  if (weight.dim() >= 2 && s.numel) {
    at::Tensor rows = padded_rows(nz.to(at::kFloat), 4);
    at::Tensor per_group = rows.view({rows.size(0), -1, 4}).sum(-1);
    s.block_sparsity = per_group.eq(0).to(at::kFloat).mean().item<double>();
    s.two_of_four = per_group.le(2).all().item<bool>();
  }
  return s;
}

nlohmann::json WeightSparsity::to_json() const {
  return {{"numel", numel}, {"zeros", zeros}, {"sparsity", sparsity}, {"block_1x4_sparsity", block_sparsity},
          {"two_of_four", two_of_four}};
}

std::vector<LayerStorage> describe_layers(const Graph& g) {
  static const std::set<std::string> int8_ops = {"compress::linear_int8", "compress::linear_int8_sparse",
                                                 "compress::conv2d_int8", "compress::conv2d_int8_sparse"};
  std::vector<LayerStorage> out;
  for (const Node* n : g.node_list()) {
    LayerStorage l;
    if ((n->is_leaf(LeafKind::Conv2d) || n->is_leaf(LeafKind::Linear)) && n->params.count("weight")) {
      const WeightSparsity s = measure(g.param(n->params.at("weight")));
      l.name = n->module;
      l.format = "float";
      l.numel = s.numel;
      l.zeros = s.zeros;
      l.block_sparsity = s.block_sparsity;
      l.two_of_four = s.two_of_four;
    } else if (!n->is_leaf() && int8_ops.count(n->op_name()) && n->inputs().size() > 1 &&
               n->input(1).kind == Arg::Kind::Param) {
      const ops::PackedWeightInfo info = ops::packed_weight_info(g.param(n->input(1).param));
      l.name = g.name_of(n->output());
      const auto suffix = l.name.rfind(":int8");
      if (suffix != std::string::npos && suffix + 5 == l.name.size()) l.name.resize(suffix);
      l.format = info.format;
      l.numel = info.n * info.k;
      l.zeros = l.numel - info.nonzeros;
    } else {
      continue;
    }
    l.sparsity = l.numel ? double(l.zeros) / double(l.numel) : 0.0;
    out.push_back(l);
  }
  return out;
}

double AgpSchedule::at(int64_t step) const {
  if (step <= begin_step) return initial_sparsity;
  if (step >= end_step()) return final_sparsity;
  // Piecewise constant: the value set by the last update at or before `step`.
  const int64_t t = begin_step + (step - begin_step) / frequency * frequency;
  const double left = 1.0 - double(t - begin_step) / double(updates * frequency);
  // s_f + (s_i - s_f) left^3, written so that left = 1 gives s_i exactly.
  return initial_sparsity + (final_sparsity - initial_sparsity) * (1.0 - left * left * left);
}

bool AgpSchedule::updates_at(int64_t step) const {
  return step >= begin_step && step <= end_step() && (step - begin_step) % frequency == 0;
}

AgpSchedule agp_over(double final_sparsity, int64_t total_steps, double ramp, int64_t updates) {
  AgpSchedule s;
  s.final_sparsity = final_sparsity;
  const int64_t ramp_steps = std::max<int64_t>(1, std::llround(ramp * double(total_steps)));
  s.updates = std::max<int64_t>(1, std::min(updates, ramp_steps));
  s.frequency = std::max<int64_t>(1, ramp_steps / s.updates);
  return s;
}

SparsityCallback::SparsityCallback(std::vector<SparseLayer> layers, Pattern pattern, bool global, AgpSchedule schedule)
    : layers_(std::move(layers)), pattern_(pattern), global_(global), schedule_(schedule) {}

void SparsityCallback::set_masks(Masks masks) {
  masks_ = std::move(masks);
  current_ = schedule_.final_sparsity;
}

void SparsityCallback::bind(const torch::jit::Module& m) {
  if (weights_.empty()) weights_ = module_weights(m, layers_);
}

void SparsityCallback::after_backward(train::StepContext& ctx) {
  bind(*ctx.module);
  if (masks_.empty()) {
    current_ = schedule_.at(ctx.step);
    masks_ = magnitude_masks(weights_, current_, pattern_, global_);
    apply_masks(weights_, masks_);
  }
  torch::NoGradGuard no_grad;
  for (const auto& w : weights_) {
    const at::Tensor& grad = w.weight.grad();
    auto it = masks_.find(w.name);
    if (grad.defined() && it != masks_.end()) grad.mul_(it->second.to(grad.scalar_type()));
  }
}

void SparsityCallback::after_step(train::StepContext& ctx) {
  bind(*ctx.module);
  const int64_t taken = ctx.step + 1;
  if (schedule_.updates_at(taken) && schedule_.at(taken) != current_) {
    current_ = schedule_.at(taken);
    masks_ = magnitude_masks(weights_, current_, pattern_, global_);
    ++updates_;
  }
  apply_masks(weights_, masks_);
}

}  // namespace compress::sparsity
