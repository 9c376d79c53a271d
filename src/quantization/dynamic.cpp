// quantize_dynamic: Linear / LSTM / GRU layers to dynamic INT8 ops (dynamic.h).
#include "compress/quantization/dynamic.h"
#include "module_path.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <functional>
#include <set>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "compress/analysis/inputs.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/ir/builder.h"
#include "compress/io.h"
#include "compress/ir/export.h"
#include "compress/ops/ops.h"
#include "compress/passes/strip_dropout.h"
#include "compress/quantization/observer.h"
#include "compress/quantization/quantize.h"

namespace compress::quant {

using detail::under_module;

namespace {

constexpr int64_t kZeroPoint = 128;  // the dynamic ops' symmetric codes
const c10::Symbol kLinear = c10::Symbol::fromQualString("aten::linear");
const c10::Symbol kLstm = c10::Symbol::fromQualString("aten::lstm");
const c10::Symbol kGru = c10::Symbol::fromQualString("aten::gru");
const c10::Symbol kListConstruct = c10::Symbol::fromQualString("prim::ListConstruct");
const c10::Symbol kEncoderLayer = c10::Symbol::fromQualString("aten::_transformer_encoder_layer_fwd");

Arg val(ValueId v) { return Arg::of_value(v); }
Arg cst(c10::IValue c) { return Arg::of_constant(std::move(c)); }
Arg param(const std::string& name) { return Arg::of_param(name); }

// A layer the pass may convert.
struct Candidate {
  Node* node = nullptr;
  std::string name, kind;
  std::vector<Arg> list;  // recurrent: the parameter list's operands
  int64_t num_layers = 1;
  bool has_biases = true, bidirectional = false, batch_first = false;
};

std::optional<int64_t> const_int(const Arg& a) {
  if (a.kind == Arg::Kind::Constant && a.constant.isInt()) return a.constant.toInt();
  return std::nullopt;
}
std::optional<bool> const_bool(const Arg& a) {
  if (a.kind == Arg::Kind::Constant && a.constant.isBool()) return a.constant.toBool();
  return std::nullopt;
}

std::string shape_of_value(const Graph& g, ValueId v) {
  try {
    return shape_to_string(g.shape(v));
  } catch (const Error&) {
    return "?";
  }
}

// Median time of f in microseconds: CPU time of this thread when the ops
// run on one intra-op thread (they then compute on this thread, and the
// figure holds on a loaded machine, where wall time mostly measures
// preemption), wall time otherwise.
double median_us(const std::function<void()>& f, int iterations) {
  const bool cpu = at::get_num_threads() == 1;
  auto now = [cpu] {
    if (!cpu) return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) * 1e-3;
  };
  for (int i = 0; i < 3; ++i) f();  // warm-up: first-call allocations, caches
  std::vector<double> t;
  for (int i = 0; i < iterations; ++i) {
    const double start = now();
    f();
    t.push_back(now() - start);
  }
  std::nth_element(t.begin(), t.begin() + static_cast<long>(t.size() / 2), t.end());
  return t[t.size() / 2];
}

std::vector<at::Tensor> flat_tensors(const c10::IValue& v) {
  if (v.isTensor()) return {v.toTensor()};
  std::vector<at::Tensor> out;
  if (v.isTuple())
    for (const auto& e : v.toTupleRef().elements()) {
      auto sub = flat_tensors(e);
      out.insert(out.end(), sub.begin(), sub.end());
    }
  return out;
}

c10::IValue ints(std::vector<int64_t> v) { return c10::IValue(std::move(v)); }

// The readable name of a linear layer from its weight's stored name:
// "enc.layers.0.linear1.weight" -> "enc.layers.0.linear1",
// "enc.layers.0.self_attn.in_proj_weight" -> "enc.layers.0.self_attn.in_proj".
std::string linear_name(const std::string& weight) {
  for (const std::string suffix : {".weight", "_weight"})
    if (weight.size() > suffix.size() && weight.compare(weight.size() - suffix.size(), suffix.size(), suffix) == 0)
      return weight.substr(0, weight.size() - suffix.size());
  return weight;
}

// Builds, at the insertion point, the ops of a fused transformer encoder
// layer (PyTorch's eval fast path, aten::_transformer_encoder_layer_fwd) or
// of a MultiheadAttention leaf, so that their linear layers become
// aten::linear nodes the pass can convert: self-attention (q/k/v
// projection, softmax(q k^T / sqrt(d)) v per head, output projection) and,
// for an encoder layer, the two residual adds and layer norms (before or
// after, norm_first) and the feed-forward linear -> relu/gelu -> linear.
class EncoderLayerBuilder {
 public:
  EncoderLayerBuilder(Graph& g, const Node& n) : g_(g), n_(n), scope_(n.scope) {}

  // The MultiheadAttention leaf's output (self-attention, no mask).
  ValueId build_attention_leaf() {
    const auto& a = std::get<AttentionAttrs>(n_.attrs);
    auto role = [&](const std::string& r) { return n_.params.count(r) ? param(n_.params.at(r)) : cst(c10::IValue()); };
    ValueId x = n_.input(0).value;
    if (!a.batch_first) x = op("aten::transpose", {val(x), cst(int64_t{0}), cst(int64_t{1})});
    ValueId y = self_attention(x, a.num_heads, a.head_size(), role("in_proj_weight"), role("in_proj_bias"),
                               role("out_proj.weight"), role("out_proj.bias"));
    return a.batch_first ? y : op("aten::transpose", {val(y), cst(int64_t{0}), cst(int64_t{1})});
  }

  ValueId build() {
    const ValueId src = n_.input(0).value;
    const int64_t E = n_.input(1).constant.toInt(), heads = n_.input(2).constant.toInt();
    const bool gelu = n_.input(7).constant.toBool(), norm_first = n_.input(8).constant.toBool();
    const double eps = n_.input(9).constant.toDouble();
    auto norm = [&](ValueId x, size_t w) {
      return op("aten::layer_norm", {val(x), cst(ints({E})), n_.input(w), n_.input(w + 1), cst(eps), cst(true)});
    };
    auto attention = [&](ValueId x) {
      return self_attention(x, heads, E / heads, n_.input(3), n_.input(4), n_.input(5), n_.input(6));
    };
    auto feed_forward = [&](ValueId x) {
      ValueId h = linear(x, 14);
      h = gelu ? op("aten::gelu", {val(h), cst(std::string("none"))}) : op("aten::relu", {val(h)});
      return linear(h, 16);
    };
    auto add = [&](ValueId a, ValueId b) { return op("aten::add", {val(a), val(b), cst(int64_t{1})}); };
    if (norm_first) {
      ValueId x = add(src, attention(norm(src, 10)));
      return add(x, feed_forward(norm(x, 12)));
    }
    ValueId x = norm(add(src, attention(src)), 10);
    return norm(add(x, feed_forward(x)), 12);
  }

 private:
  ValueId op(const std::string& name, std::vector<Arg> args, const std::string& out = "") {
    OpOptions o;
    o.scope = scope_;
    o.name = out;
    return add_op(g_, name, std::move(args), o);
  }

  // aten::linear with the weight and bias operands at `w` and `w + 1`.
  ValueId linear(ValueId x, size_t w) { return linear(x, n_.input(w), n_.input(w + 1)); }
  ValueId linear(ValueId x, const Arg& weight, const Arg& bias) {
    return op("aten::linear", {val(x), weight, bias}, weight.kind == Arg::Kind::Param ? linear_name(weight.param) : "");
  }

  // x: [B, T, E] -> [B, T, E]; `heads` heads of size d.
  ValueId self_attention(ValueId x, int64_t heads, int64_t d, const Arg& qkv_w, const Arg& qkv_b, const Arg& out_w,
                         const Arg& out_b) {
    ValueId qkv = linear(x, qkv_w, qkv_b);  // [B, T, 3 heads d]
    ValueId split = op("aten::permute", {val(op("aten::unflatten", {val(qkv), cst(int64_t{-1}), cst(ints({3, heads, d}))})),
                                         cst(ints({2, 0, 3, 1, 4}))});  // [3, B, heads, T, d]
    auto part = [&](int64_t i) { return op("aten::select", {val(split), cst(int64_t{0}), cst(i)}); };
    ValueId q = part(0), k = part(1), v = part(2);
    ValueId scores = op("aten::matmul", {val(q), val(op("aten::transpose", {val(k), cst(int64_t{-2}), cst(int64_t{-1})}))});
    ValueId scaled = op("aten::mul", {val(scores), cst(1.0 / std::sqrt(static_cast<double>(d)))});
    ValueId weights = op("aten::softmax", {val(scaled), cst(int64_t{-1}), cst(c10::IValue())});
    ValueId heads_out = op("aten::transpose", {val(op("aten::matmul", {val(weights), val(v)})), cst(int64_t{1}), cst(int64_t{2})});
    ValueId merged = op("aten::flatten", {val(heads_out), cst(int64_t{2}), cst(int64_t{-1})});  // [B, T, heads d]
    return linear(merged, out_w, out_b);
  }

  Graph& g_;
  const Node& n_;
  std::string scope_;
};

class DynamicConverter {
 public:
  DynamicConverter(Graph& g, const DynamicOptions& o, DynamicReport& r) : g_(g), o_(o), r_(r) {}

  void run() {
    check_exclude();
    decompose_encoder_layers();
    std::vector<Candidate> found;
    for (Node* n : g_.node_list())
      if (auto c = candidate(*n); c && (selected(c->name) || selected(n->is_leaf() ? n->module : n->scope)))
        found.push_back(*c);
    for (Candidate& c : found) {
      DynamicLayerReport rep;
      rep.name = c.name;
      rep.kind = c.kind;
      rep.shape = c.node->input(0).is_value() ? shape_of_value(g_, c.node->input(0).value) : "?";
      rep.reason = why_float(c);
      if (rep.reason.empty()) convert(c, rep);
      rep.precision = rep.reason.empty() ? "int8" : "float";
      r_.layers.push_back(rep);
    }
    g_.eliminate_dead_code();
    remove_unused_params();
  }

 private:
  // Fused encoder layers without a mask, and MultiheadAttention leaves,
  // become ops whose linears convert.
  void decompose_encoder_layers() {
    for (Node* n : g_.node_list()) {
      const bool attention = n->is_leaf(LeafKind::MultiheadAttention) && n->input(0).is_value();
      const bool layer = n->is_op(kEncoderLayer) && n->inputs().size() >= 18 &&
                         (n->inputs().size() == 18 ||
                          (n->input(18).kind == Arg::Kind::Constant && n->input(18).constant.isNone()));
      if (!attention && !layer) continue;  // masked attention stays fused (float)
      const std::string& module = attention ? n->module : n->scope;
      bool excluded = !selected(module);
      for (const auto& e : o_.exclude) excluded = excluded || under_module(module, e);
      if (excluded) continue;
      auto guard = g_.inserting_before(n);
      EncoderLayerBuilder builder(g_, *n);
      ValueId y = attention ? builder.build_attention_leaf() : builder.build();
      g_.replace_all_uses(n->output(), val(y));
      g_.erase(n);
    }
  }

  // Linear leaves, aten::linear with a stored weight, aten::lstm / gru with stored parameters.
  std::optional<Candidate> candidate(Node& n) {
    Candidate c;
    c.node = &n;
    if (n.is_leaf(LeafKind::Linear)) {
      c.name = n.module;
      c.kind = "Linear";
      return c;
    }
    if (n.is_op(kLinear) && n.inputs().size() >= 2 && n.input(1).kind == Arg::Kind::Param) {
      c.name = g_.name_of(n.output());
      c.kind = "Linear";
      return c;
    }
    const bool lstm = n.is_op(kLstm), gru = n.is_op(kGru);
    if ((lstm || gru) && n.inputs().size() == 9 && n.input(2).is_value()) {
      c.name = n.scope.empty() ? g_.name_of(n.output()) : n.scope;
      c.kind = lstm ? "LSTM" : "GRU";
      const Node* list = g_.producer(n.input(2).value);
      if (list && list->is_op(kListConstruct)) c.list = list->inputs();
      c.has_biases = const_bool(n.input(3)).value_or(true);
      c.num_layers = const_int(n.input(4)).value_or(0);
      c.bidirectional = const_bool(n.input(7)).value_or(false);
      c.batch_first = const_bool(n.input(8)).value_or(false);
      return c;
    }
    return std::nullopt;
  }

  // Under one of DynamicOptions::only (every module when it is empty).
  bool selected(const std::string& module) const {
    if (o_.only.empty()) return true;
    for (const auto& path : o_.only)
      if (under_module(module, path)) return true;
    return false;
  }

  std::string excluded_by(const Candidate& c) const {
    const std::string module = c.node->is_leaf() ? c.node->module : c.node->scope;
    for (const auto& e : o_.exclude)
      if (under_module(module, e) || under_module(c.name, e) || g_.name_of(c.node->output()) == e) return e;
    return "";
  }

  void check_exclude() const {
    for (const auto& e : o_.exclude) {
      if (g_.find_value(e)) continue;
      std::vector<std::string> names;
      bool found = false;
      for (const Node& n : g_.nodes()) {
        const std::string& m = n.is_leaf() ? n.module : n.scope;
        found = found || under_module(m, e);
        names.push_back(m);
      }
      if (found) continue;
      std::string close = closest_name(e, names);
      bad_input("--exclude '" + e + "': the model has no module or value of that name" +
                (close.empty() ? "" : " (did you mean '" + close + "'?)"));
    }
  }

  // Why c stays float (empty: it converts).
  std::string why_float(const Candidate& c) {
    if (std::string e = excluded_by(c); !e.empty()) return "excluded by the user (" + e + ")";
    const Node& n = *c.node;
    if (!n.input(0).is_value()) return "its input is not a computed tensor";
    if (g_.dtype(n.input(0).value) != at::kFloat) return "its input is not float32";
    if (c.kind == "Linear") return "";
    const int64_t per = c.has_biases ? 4 : 2, dirs = c.bidirectional ? 2 : 1;
    if (c.list.empty() || c.num_layers < 1 || static_cast<int64_t>(c.list.size()) != c.num_layers * dirs * per)
      return "its parameters are not a list of " + std::to_string(per) +
             " tensors per layer and direction (projections, proj_size, are not covered)";
    for (const Arg& a : c.list)
      if (a.kind != Arg::Kind::Param) return "its parameters are computed, not stored";
    if (g_.shape(n.input(0).value).size() != 3) return "its input is not 3-D (unbatched sequences are not covered)";
    return "";
  }

  bool param_in_use(const std::string& name) const {
    for (const Node& n : g_.nodes()) {
      for (const Arg& a : n.inputs())
        if (a.kind == Arg::Kind::Param && a.param == name) return true;
      for (const auto& kv : n.params)
        if (kv.second == name) return true;
    }
    return false;
  }

  void remove_unused_params() {
    for (const std::string& p : replaced_)
      if (g_.has_param(p) && !param_in_use(p)) g_.remove_param(p);
  }

  void store(const std::string& name, const at::Tensor& t) {
    if (g_.has_param(name)) g_.remove_param(name);
    g_.add_param(name, t.contiguous(), /*is_buffer=*/true);
  }

  // Packs `weight_name` for the dynamic ops: buffers <base>_packed and <base>_scale.
  std::pair<std::string, std::string> pack(const std::string& weight_name, const std::string& base) {
    QuantizedWeight w = quantize_weight_per_channel(g_.param(weight_name).detach().to(at::kFloat));
    store(base + "_packed", ops::pack_linear_int8(w.q, kZeroPoint, "auto"));
    store(base + "_scale", w.scale.to(at::kFloat));
    replaced_.insert(weight_name);
    return {base + "_packed", base + "_scale"};
  }

  // A float bias operand the ops accept: the stored one when it is float32, else a converted copy.
  Arg float_bias(const std::string& name, const std::string& copy_name) {
    if (g_.param(name).scalar_type() == at::kFloat) return param(name);
    store(copy_name, g_.param(name).detach().to(at::kFloat));
    return param(copy_name);
  }

  void convert(const Candidate& c, DynamicLayerReport& rep) {
    torch::NoGradGuard no_grad;
    if (c.kind == "Linear") convert_linear(c, rep);
    else convert_recurrent(c, rep);
  }

  void convert_linear(const Candidate& c, DynamicLayerReport& rep) {
    Node* n = c.node;
    const bool leaf = n->is_leaf();
    const std::string weight = leaf ? n->params.at("weight") : n->input(1).param;
    std::optional<std::string> bias;
    if (leaf && n->params.count("bias")) bias = n->params.at("bias");
    if (!leaf && n->inputs().size() > 2 && n->input(2).kind == Arg::Kind::Param) bias = n->input(2).param;
    const std::string base = weight.size() > 7 && weight.compare(weight.size() - 7, 7, ".weight") == 0
                                 ? weight.substr(0, weight.size() - 7) + ".weight_int8"
                                 : weight + "_int8";
    const ValueId x = n->input(0).value;
    auto [packed, scale] = pack(weight, base);
    const Arg b = bias ? float_bias(*bias, base + "_bias") : cst(c10::IValue());
    if (o_.measure) {
      at::Tensor xs = at::randn(g_.shape(x));
      const at::Tensor& w = g_.param(weight);
      c10::optional<at::Tensor> bt;
      if (bias) bt = g_.param(b.kind == Arg::Kind::Param ? b.param : *bias);
      const at::Tensor &pw = g_.param(packed), &sw = g_.param(scale);
      rep.float_us = median_us([&] { at::linear(xs, w, bt); }, o_.measure_iterations);
      rep.int8_us = median_us([&] { ops::linear_int8_dynamic(xs, pw, sw, bt); }, o_.measure_iterations);
      if (rep.int8_us >= rep.float_us) {
        rep.reason = "INT8 is not faster at this shape (measured)";
        g_.remove_param(packed);
        g_.remove_param(scale);
        replaced_.erase(weight);
        return;
      }
    }
    auto guard = g_.inserting_before(n);
    OpOptions oo;
    oo.scope = leaf ? n->scope : n->scope;
    oo.name = c.name + ":int8_dynamic";
    ValueId y = add_op(g_, "compress::linear_int8_dynamic", {val(x), param(packed), param(scale), b, cst(false)}, oo);
    g_.replace_all_uses(n->output(), val(y));
    if (leaf && !n->module.empty()) g_.module_types[n->module] = "__torch__.compress.quantized.LinearInt8Dynamic";
    g_.erase(n);
  }

  void convert_recurrent(const Candidate& c, DynamicLayerReport& rep) {
    Node* n = c.node;
    const bool lstm = c.kind == "LSTM";
    const int64_t dirs = c.bidirectional ? 2 : 1, per = c.has_biases ? 4 : 2;
    std::vector<Arg> params;
    for (int64_t ld = 0; ld < c.num_layers * dirs; ++ld) {
      const Arg* p = &c.list[static_cast<size_t>(ld * per)];
      auto [pih, sih] = pack(p[0].param, p[0].param + "_int8");
      auto [phh, shh] = pack(p[1].param, p[1].param + "_int8");
      const int64_t rows = g_.param(p[0].param).size(0);
      Arg bih, bhh;
      if (c.has_biases) {
        bih = float_bias(p[2].param, p[2].param + "_f32");
        bhh = float_bias(p[3].param, p[3].param + "_f32");
      } else {
        store(p[0].param + "_int8_zero_bias", at::zeros({rows}, at::kFloat));
        bih = bhh = param(p[0].param + "_int8_zero_bias");
      }
      for (const Arg& a : {param(pih), param(sih), param(phh), param(shh), bih, bhh}) params.push_back(a);
    }
    const ValueId x = n->input(0).value;
    if (o_.measure) {
      at::Tensor xs = at::randn(g_.shape(x));
      const int64_t B = g_.shape(x)[c.batch_first ? 0 : 1];
      const int64_t H = g_.param(c.list[1].param).size(1);
      at::Tensor h0 = at::zeros({c.num_layers * dirs, B, H});
      std::vector<at::Tensor> fp, qp;
      for (const Arg& a : c.list) fp.push_back(g_.param(a.param));
      for (const Arg& a : params) qp.push_back(g_.param(a.param));
      if (lstm) {
        rep.float_us = median_us([&] { at::lstm(xs, {h0, h0}, fp, c.has_biases, c.num_layers, 0.0, false, c.bidirectional, c.batch_first); },
                                 o_.measure_iterations);
        rep.int8_us = median_us([&] { ops::lstm_int8_dynamic(xs, {h0, h0}, qp, c.num_layers, c.bidirectional, c.batch_first); },
                                o_.measure_iterations);
      } else {
        rep.float_us = median_us([&] { at::gru(xs, h0, fp, c.has_biases, c.num_layers, 0.0, false, c.bidirectional, c.batch_first); },
                                 o_.measure_iterations);
        rep.int8_us = median_us([&] { ops::gru_int8_dynamic(xs, h0, qp, c.num_layers, c.bidirectional, c.batch_first); },
                                o_.measure_iterations);
      }
      if (rep.int8_us >= rep.float_us) {
        rep.reason = "INT8 is not faster at this shape (measured)";
        for (const Arg& a : params)
          if (!param_in_use(a.param) && g_.has_param(a.param) && g_.params.at(a.param).is_buffer &&
              a.param.find("_int8") != std::string::npos)
            g_.remove_param(a.param);
        for (const Arg& a : c.list) replaced_.erase(a.param);
        return;
      }
    }
    auto guard = g_.inserting_before(n);
    Node* list = g_.create_raw_op(kListConstruct, nullptr, params, {c10::ListType::ofTensors()}, n->scope);
    OpOptions oo;
    oo.scope = n->scope;
    oo.name = c.name + ":int8_dynamic";
    Node* q = create_op(g_, lstm ? "compress::lstm_int8_dynamic" : "compress::gru_int8_dynamic",
                        {val(x), n->input(1), val(list->output()), cst(c.num_layers), cst(c.bidirectional),
                         cst(c.batch_first)},
                        oo);
    for (size_t i = 0; i < n->outputs().size(); ++i) g_.replace_all_uses(n->output(i), val(q->output(i)));
    g_.erase(n);
    for (const Arg& a : c.list) replaced_.insert(a.param);
  }

  Graph& g_;
  const DynamicOptions& o_;
  DynamicReport& r_;
  std::set<std::string> replaced_;  // stored tensors the converted layers no longer read
};

}  // namespace

nlohmann::json DynamicLayerReport::to_json() const {
  nlohmann::json e = {{"name", name}, {"kind", kind}, {"input_shape", shape}, {"precision", precision}};
  if (!reason.empty()) e["reason"] = reason;
  if (float_us > 0) e["float_us"] = std::round(float_us * 10) / 10;
  if (int8_us > 0) e["int8_us"] = std::round(int8_us * 10) / 10;
  return e;
}

nlohmann::json DynamicReport::to_json() const {
  nlohmann::json j;
  j["layers"] = nlohmann::json::array();
  int int8 = 0;
  for (const auto& l : layers) {
    int8 += l.precision == "int8";
    j["layers"].push_back(l.to_json());
  }
  j["int8_layers"] = int8;
  j["output_sqnr_db"] = std::isinf(output_sqnr_db) ? nlohmann::json("inf") : nlohmann::json(output_sqnr_db);
  j["output_max_abs_diff"] = output_max_abs_diff;
  j["size"] = {{"bytes_before", bytes_before}, {"bytes_after", bytes_after}};
  return j;
}

DynamicReport quantize_dynamic(Graph& g, const DynamicOptions& options) {
  check_finite_parameters(g);
  g.infer_shapes();  // the example inputs must fit, before any work
  DynamicReport report;
  strip_dropout(g);
  const Graph original = g;
  report.bytes_before = saved_size(export_module(original));
  DynamicConverter(g, options, report).run();
  g.lint();
  report.bytes_after = saved_size(export_module(g));

  // The converted model against the float one on synthetic inputs.
  torch::NoGradGuard no_grad;
  std::vector<c10::IValue> inputs;
  for (const at::Tensor& t : synthesize_inputs(original, options.seed)) inputs.emplace_back(t);
  torch::jit::Module fm = export_module(original), qm = export_module(g);
  fm.eval();
  qm.eval();
  auto ref = flat_tensors(fm.forward(inputs)), got = flat_tensors(qm.forward(inputs));
  Sqnr sqnr;
  for (size_t i = 0; i < std::min(ref.size(), got.size()); ++i) {
    if (!ref[i].is_floating_point()) continue;
    sqnr.add(ref[i], got[i]);
    report.output_max_abs_diff = std::max(report.output_max_abs_diff,
                                          (ref[i].to(at::kDouble) - got[i].to(at::kDouble)).abs().max().item<double>());
  }
  report.output_sqnr_db = sqnr.db();
  return report;
}

}  // namespace compress::quant
