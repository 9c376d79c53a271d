// convert: planned layers become compress::conv2d_int8 / linear_int8 ops
// over uint8 activations (quantize.h).
#include <cmath>
#include <set>

#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"
#include "compress/ir/builder.h"
#include "compress/ops/ops.h"
#include "compress/quantization/qat.h"
#include "compress/quantization/quantize.h"
#include "compress/quantization/sparse_format.h"

namespace compress::quant {

namespace {

const c10::Symbol kMaxPool2d = c10::Symbol::fromQualString("aten::max_pool2d");
const c10::Symbol kFlatten = c10::Symbol::fromQualString("aten::flatten");
constexpr int64_t kUint8Code = 0, kFloatCode = 6;  // c10::ScalarType codes, as TorchScript passes them

Arg val(ValueId v) { return Arg::of_value(v); }
Arg cst(c10::IValue c) { return Arg::of_constant(std::move(c)); }
c10::IValue ints(std::vector<int64_t> v) { return c10::IValue(std::move(v)); }

// A uint8 twin of a float value: its codes, their parameters, and whether a
// 4-D value is held NHWC (the kernels' layout) rather than NCHW.
struct QValue {
  ValueId q = -1;
  QuantParams p;
  bool nhwc = false;
};

// Two modes share every decision (which values are rounded, where, with
// which parameters): the INT8 conversion, and its fake-quant twin for QAT
// (`qat` set), which leaves the graph float and inserts fake quantization
// at each point the INT8 graph rounds.
class Converter {
 public:
  Converter(Graph& g, const std::map<ValueId, Observer>& observers, const QuantizeOptions& options,
            QuantizeReport& report, const FixedParams* fixed = nullptr, QatModel* qat = nullptr)
      : g_(g), observers_(observers), options_(options), report_(report), fixed_(fixed), qat_(qat) {
    // Trained (QAT) parameters and fake quantization are 8-bit.
    codes_ = fixed_ || qat_ ? ActivationCodes{255, "u8", "QAT's parameters are 8-bit"}
                            : resolve_activations(options_.activations);
    report_.activations = codes_;
  }

  void run(const std::vector<FusedLayer>& plan) {
    // Shapes of the float graph, before any edit (the INT8 graph is not reinferred).
    for (size_t v = 0; v < g_.num_values(); ++v) {
      if (!g_.value(static_cast<ValueId>(v)).is_tensor()) continue;
      rank_[static_cast<ValueId>(v)] = rank_of(static_cast<ValueId>(v));
      if (qat_) sample_numel_[static_cast<ValueId>(v)] = sample_numel_of(static_cast<ValueId>(v));
    }
    std::map<const Node*, const FusedLayer*> roots;
    std::map<const Node*, std::string> float_reason;
    if (!qat_) record_gemm_rows(plan);
    for (const FusedLayer& f : plan) {
      if (f.int8()) {
        roots[f.root()] = &f;
        int8_reads_.insert(f.input());
        if (f.add) int8_reads_.insert(f.residual);
      } else {
        float_reason[f.layer] = f.float_reason;
      }
    }
    for (Node& n : g_.nodes())
      if ((n.is_op(kMaxPool2d) || n.is_op(kFlatten)) && n.input().is_value()) int8_reads_.insert(n.input().value);
    for (Node* n : g_.node_list()) {
      if (n->erased()) continue;
      auto r = roots.find(n);
      if (r != roots.end()) {
        convert_layer(*r->second);
      } else if ((n->is_op(kMaxPool2d) || n->is_op(kFlatten)) && twin_of(n->input().value)) {
        pass_through(*n);
      }
    }
    // The report lists layers in graph order, float ones with their reason.
    std::map<std::string, LayerReport> converted;
    for (auto& l : report_.layers) converted[l.name] = l;
    report_.layers.clear();
    for (const FusedLayer& f : plan) report_.layers.push_back(f.int8() ? converted.at(f.name()) : float_layer(f));
    reshape_instead_of_view();
    g_.eliminate_dead_code();
    if (!qat_) list_float_nodes(float_reason);
  }

 private:
  size_t rank_of(ValueId v) {
    try {
      return g_.shape(v).size();
    } catch (const Error&) {
      return 0;
    }
  }

  // Elements of one sample of `v` (LSQ's gradient scale); 1 when unknown.
  int64_t sample_numel_of(ValueId v) {
    try {
      const Shape& s = g_.shape(v);
      int64_t n = 1;
      for (size_t i = 1; i < s.size(); ++i) n *= s[i];
      return std::max<int64_t>(n, 1);
    } catch (const Error&) {
      return 1;
    }
  }

  const QValue* twin_of(ValueId v) const {
    auto it = twins_.find(v);
    return it == twins_.end() ? nullptr : &it->second;
  }

  QuantParams params_of(ValueId v, double lo = -std::numeric_limits<double>::infinity(),
                        double hi = std::numeric_limits<double>::infinity()) const {
    if (fixed_) {
      auto f = fixed_->activations.find(v);
      if (f != fixed_->activations.end()) return f->second;
    }
    auto it = observers_.find(v);
    if (it == observers_.end() || it->second.empty())
      failure("quantize: no calibration statistics for " + g_.describe_value(v));
    Range r = it->second.range(options_.method, options_.percentile, codes_.quant_max);
    r.lo = std::max(r.lo, lo);
    r.hi = std::min(r.hi, hi);
    return affine_u8(r, codes_.quant_max);
  }

  ValueId op(const std::string& name, std::vector<Arg> args, const std::string& scope, const std::string& out = "") {
    OpOptions o;
    o.scope = scope;
    o.name = out;
    ValueId y = add_op(g_, name, std::move(args), o);
    created_.insert(g_.producer(y)->id());
    return y;
  }

  // The uint8 twin of `v`, quantizing it (before `at`) the first time it is needed.
  QValue twin(ValueId v, Node* at, const std::string& scope) {
    if (const QValue* t = twin_of(v)) return *t;
    QValue t;
    t.p = params_of(v);
    t.nhwc = rank_.count(v) && rank_[v] == 4;
    if (qat_) {  // the float value rounded to the codes' grid, right where it is computed
      Node* producer = g_.producer(v);
      auto guard = producer ? g_.inserting_after(producer) : g_.inserting_before(g_.first_node());
      t.q = fake_quant_activation(v, v, t.p, -std::numeric_limits<double>::infinity(),
                                  std::numeric_limits<double>::infinity(), scope);
      twins_[v] = t;
      return t;
    }
    auto guard = g_.inserting_before(at);
    // 4-D values become NHWC codes in the same pass (no float reorder).
    std::vector<Arg> args = {val(v), cst(t.p.scale), cst(t.p.zero_point)};
    if (codes_.quant_max < 255) args.push_back(cst(codes_.quant_max));
    t.q = op(t.nhwc ? "compress::quantize_u8_nhwc" : "compress::quantize_u8", std::move(args), scope);
    twins_[v] = t;
    return t;
  }

  // Float readers of `root`'s result now read `y` (dequantized from `t` when it is uint8).
  void route_float_readers(Node* root, ValueId y, const QValue* t) {
    g_.replace_all_uses(root->output(), val(y));
    if (t) twins_[y] = *t;
  }

  ValueId dequantized(const QValue& t, const std::string& scope) {
    ValueId d = op("compress::dequantize_u8", {val(t.q), cst(t.p.scale), cst(t.p.zero_point)}, scope);
    return t.nhwc ? op("aten::permute", {val(d), cst(ints({0, 3, 1, 2}))}, scope) : d;
  }

  // QAT: `x` (the value the INT8 graph rounds, `key` in the float graph)
  // through a per-tensor fake quantizer with parameters `p`, at the insertion point.
  ValueId fake_quant_activation(ValueId key, ValueId x, const QuantParams& p, double lo, double hi,
                                const std::string& scope) {
    FakeQuantActivation a;
    a.value = key;
    const std::string prefix = "fake_quant.act" + std::to_string(qat_->activations.size());
    a.scale = prefix + ".scale";
    a.zero_point = prefix + ".zero_point";
    a.observed = g_.name_of(x);
    a.clamp_lo = lo;
    a.clamp_hi = hi;
    const bool lsq = qat_->options.method == QatMethod::Lsq;
    g_.add_param(a.scale, at::full({1}, p.scale, at::kFloat), /*is_buffer=*/!lsq);
    g_.add_param(a.zero_point, at::full({1}, static_cast<double>(p.zero_point), at::kFloat), /*is_buffer=*/true);
    auto n = sample_numel_.find(key);
    const double grad_scale = 1.0 / std::sqrt(static_cast<double>(n == sample_numel_.end() ? 1 : n->second) * 255.0);
    qat_->activations.push_back(a);
    return op("aten::_fake_quantize_learnable_per_tensor_affine",
              {val(x), Arg::of_param(a.scale), Arg::of_param(a.zero_point), cst(int64_t{0}), cst(int64_t{255}),
               cst(grad_scale)},
              scope);
  }

  // QAT: the layer becomes aten::conv2d / aten::linear over its input's
  // fake-quant value and its per-channel fake-quant weight; returns its output.
  ValueId fake_quant_layer(const FusedLayer& f, ValueId input) {
    Node* layer = f.layer;
    const std::string module = layer->module;  // a copy: the node is erased below
    const std::string prefix = module.empty() ? "" : module + ".";
    const bool conv = layer->is_leaf(LeafKind::Conv2d);
    FakeQuantWeight w;
    w.layer = module;
    w.weight = layer->params.at("weight");
    w.scale = prefix + "weight_scale";
    w.zero_point = prefix + "weight_zero_point";
    const at::Tensor& weight = g_.param(w.weight);
    const bool lsq = qat_->options.method == QatMethod::Lsq;
    g_.add_param(w.scale, quantize_weight_per_channel(weight).scale, /*is_buffer=*/!lsq);
    g_.add_param(w.zero_point, at::zeros({weight.size(0)}, at::kFloat), /*is_buffer=*/true);
    qat_->weights.push_back(w);
    const double per_channel = static_cast<double>(weight.numel() / std::max<int64_t>(weight.size(0), 1));
    auto guard = g_.inserting_before(layer);
    ValueId fw = op("aten::_fake_quantize_learnable_per_channel_affine",
                    {Arg::of_param(w.weight), Arg::of_param(w.scale), Arg::of_param(w.zero_point), cst(int64_t{0}),
                     cst(int64_t{-127}), cst(int64_t{127}), cst(1.0 / std::sqrt(per_channel * 127.0))},
                    layer->scope);
    Arg bias = layer->params.count("bias") ? Arg::of_param(layer->params.at("bias")) : cst(c10::IValue());
    ValueId y;
    if (conv) {
      const auto& a = std::get<ConvAttrs>(layer->attrs);
      y = op("aten::conv2d",
             {val(input), val(fw), bias, cst(ints(a.stride)), cst(ints(a.padding)), cst(ints(a.dilation)),
              cst(a.groups)},
             layer->scope);
    } else {
      y = op("aten::linear", {val(input), val(fw), bias}, layer->scope);
    }
    g_.replace_all_uses(layer->output(), val(y));
    g_.erase(layer);
    if (!module.empty())
      g_.module_types[module] = conv ? "__torch__.compress.qat.FakeQuantConv2d" : "__torch__.compress.qat.FakeQuantLinear";
    return y;
  }

  // QAT form of convert_layer: same decisions, float ops with fake quantization.
  void fake_quant_layer_and_output(const FusedLayer& f, const QValue& in, bool float_out, const QuantParams& out,
                                   LayerReport& rep) {
    const ValueId key = f.output();  // the value the INT8 graph writes as codes (in the float graph)
    if (f.add) {  // the residual operand reads its fake-quant value
      size_t other = f.add->input(0).is_value(f.layer->output()) ? 1 : 0;
      QValue res = twin(f.add->input(other).value, f.root(), f.root()->scope);
      f.add->set_input(other, val(res.q));
    }
    Node* root = f.root();
    const bool layer_is_root = root == f.layer;
    const std::string scope = root->scope;
    ValueId y = fake_quant_layer(f, in.q);
    ValueId result = layer_is_root ? y : root->output();
    rep.float_value = rep.int8_value = g_.name_of(result);
    if (float_out) return;
    Node* after = g_.producer(result);
    auto guard = g_.inserting_after(after);
    ValueId q = fake_quant_activation(key, result, out, f.clamp_lo, f.clamp_hi, scope);
    g_.replace_all_uses(result, val(q));
    g_.producer(q)->set_input(0, val(result));
    QValue t{q, out, rank_.count(key) && rank_[key] == 4};
    twins_[key] = t;
    twins_[q] = t;
  }

  void store(const std::string& name, const at::Tensor& t) {
    if (g_.has_param(name)) g_.remove_param(name);
    g_.add_param(name, t.contiguous(), /*is_buffer=*/true);
  }

  void convert_layer(const FusedLayer& f) {
    torch::NoGradGuard no_grad;
    Node* root = f.root();
    Node* layer = f.layer;
    const std::string scope = root->scope, module = layer->module;
    const bool conv = layer->is_leaf(LeafKind::Conv2d);
    LayerReport rep;
    rep.name = module;
    rep.ops = f.fused_ops();
    rep.precision = "int8";
    rep.float_value = g_.name_of(root->output());

    QValue in = twin(f.input(), root, scope);
    QValue res;
    if (f.add) {  // the add's other operand, as it reads now (an earlier conversion may have rerouted it)
      const Arg& a = f.add->input(0);
      res = twin(a.is_value(layer->output()) ? f.add->input(1).value : a.value, root, scope);
    }
    // A layer only float ops read writes float32 itself (no output rounding);
    // the kernel's float path has a ReLU but no clamp.
    bool float_out = !int8_reads_.count(f.output()) && f.clamp_hi == std::numeric_limits<double>::infinity() &&
                     (f.act == nullptr || f.relu) && !f.add;
    QuantParams out = float_out ? QuantParams{} : params_of(f.output(), f.clamp_lo, f.clamp_hi);
    if (qat_) {
      fake_quant_layer_and_output(f, in, float_out, out, rep);
      rep.input = in.p;
      rep.output = out;
      rep.float_output = float_out;
      report_.layers.push_back(rep);
      return;
    }

    QuantizedWeight w = fixed_weight(*layer);
    // A clamp bound (relu6) inside trained parameters' code range: the
    // largest code the kernel writes, as the fake quantizer after the clamp
    // rounds it (calibrated ranges are intersected with the bounds instead).
    int64_t quant_max = codes_.quant_max;
    if (fixed_ && !float_out && std::isfinite(f.clamp_hi)) {
      const float inv = 1.0f / static_cast<float>(out.scale);
      int64_t hi_code = out.zero_point + static_cast<int64_t>(std::nearbyint(static_cast<float>(f.clamp_hi) * inv));
      quant_max = std::max(out.zero_point, std::min<int64_t>(255, hi_code));
    }
    at::Tensor scale = w.scale * static_cast<float>(in.p.scale);
    at::Tensor bias;
    if (layer->params.count("bias")) bias = g_.param(layer->params.at("bias")).to(at::kFloat);
    if (!float_out) {
      scale = scale / static_cast<float>(out.scale);
      if (bias.defined()) bias = bias / static_cast<float>(out.scale);
    }
    const std::string prefix = module.empty() ? "" : module + ".";
    int64_t groups = conv ? std::get<ConvAttrs>(layer->attrs).groups : 1;
    const FormatChoice format = weight_format(*layer, w.q, in.p.zero_point, rep);
    const bool sparse = format.packed.defined();
    // A sparse 1x1 stride-1 conv runs as a GEMM over its NHWC rows (linear_int8_sparse).
    const bool conv_op = conv && !(sparse && is_pointwise_gemm(*layer));
    const std::string layout = codes_.quant_max < 255 ? "auto_u7" : "auto";
    at::Tensor packed = sparse ? format.packed
                        : conv ? ops::pack_conv2d_int8(w.q, in.p.zero_point, groups, layout)
                               : ops::pack_linear_int8(w.q, in.p.zero_point, layout);
    store(prefix + "packed_weight", packed);
    store(prefix + "requant_scale", scale.to(at::kFloat));
    if (bias.defined()) store(prefix + "requant_bias", bias.to(at::kFloat));

    auto guard = g_.inserting_before(root);
    std::vector<Arg> args = {val(in.q), Arg::of_param(prefix + "packed_weight"),
                             Arg::of_param(prefix + "requant_scale"),
                             bias.defined() ? Arg::of_param(prefix + "requant_bias") : cst(c10::IValue())};
    if (conv_op) {
      const auto& a = std::get<ConvAttrs>(layer->attrs);
      args.push_back(cst(ints(a.stride)));
      args.push_back(cst(ints(a.padding)));
      args.push_back(cst(ints(a.dilation)));
    }
    args.push_back(cst(out.zero_point));
    args.push_back(cst(f.relu));
    args.push_back(cst(float_out ? kFloatCode : kUint8Code));
    if (f.add) {
      args.push_back(val(res.q));
      args.push_back(cst(res.p.scale / out.scale));
      args.push_back(cst(res.p.zero_point));
    }
    if (quant_max < 255) {
      if (!f.add) {
        args.push_back(cst(c10::IValue()));
        args.push_back(cst(1.0));
        args.push_back(cst(int64_t{0}));
      }
      args.push_back(cst(quant_max));
    }
    const char* int8_op = conv_op ? (sparse ? "compress::conv2d_int8_sparse" : "compress::conv2d_int8")
                                  : (sparse ? "compress::linear_int8_sparse" : "compress::linear_int8");
    ValueId y = op(int8_op, std::move(args), scope, module + ":int8");
    rep.int8_value = g_.name_of(y);
    rep.int8_value_u8 = !float_out;
    rep.int8_value_nhwc = conv;
    rep.input = in.p;
    rep.output = out;
    rep.float_output = float_out;
    rep.weight_scale_min = w.scale.min().item<double>();
    rep.weight_scale_max = w.scale.max().item<double>();
    if (float_out) {
      ValueId z = conv ? op("aten::permute", {val(y), cst(ints({0, 3, 1, 2}))}, scope) : y;
      route_float_readers(root, z, nullptr);
    } else {
      QValue t{y, out, conv};
      twins_[f.output()] = t;
      route_float_readers(root, dequantized(t, scope), &t);
    }
    std::vector<std::string> old_params;
    for (const auto& kv : layer->params) old_params.push_back(kv.second);
    for (Node* n : {f.act, f.add, f.layer})
      if (n) g_.erase(n);
    for (const auto& p : old_params) g_.remove_param(p);
    // The module now holds packed INT8 tensors: its class says so.
    if (!module.empty()) g_.module_types[module] = conv ? "__torch__.compress.quantized.Conv2dInt8" : "__torch__.compress.quantized.LinearInt8";
    report_.layers.push_back(rep);
  }

  // max_pool2d / flatten on uint8 codes: exact, and the result keeps the
  // input's parameters. NHWC codes are pooled by compress::max_pool2d_u8
  // (LibTorch has no uint8 max_pool2d).
  void pass_through(Node& n) {
    QValue in = *twin_of(n.input().value);
    if (n.is_op(kMaxPool2d) && !in.nhwc) return;
    if (n.is_op(kFlatten) && (!rank_.count(n.output()) || rank_[n.output()] == 4)) return;
    if (qat_) {  // on fake-quant values these are exact too: read the rounded value
      if (!n.input().is_value(in.q)) n.set_input(0, val(in.q));
      QValue t = in;
      t.q = n.output();
      if (n.is_op(kFlatten)) t.nhwc = false;
      twins_[n.output()] = t;
      return;
    }
    const std::string scope = n.scope;
    auto guard = g_.inserting_before(&n);
    std::vector<Arg> rest(n.inputs().begin() + 1, n.inputs().end());
    QValue t = in;
    if (n.is_op(kMaxPool2d)) {
      std::vector<Arg> args = {val(in.q)};
      args.insert(args.end(), rest.begin(), rest.end());
      t.q = op("compress::max_pool2d_u8", args, scope);
    } else {
      ValueId x = in.nhwc ? op("aten::permute", {val(in.q), cst(ints({0, 3, 1, 2}))}, scope) : in.q;
      std::vector<Arg> args = {val(x)};
      args.insert(args.end(), rest.begin(), rest.end());
      t.q = op("aten::flatten", args, scope);
      t.nhwc = false;
    }
    twins_[n.output()] = t;
    route_float_readers(&n, dequantized(t, scope), &t);
    g_.erase(&n);
  }

  // ---- sparse INT8 weights (sparse_format.h) ----

  // A 1x1 convolution with stride 1 and no padding: a GEMM over its NHWC rows.
  static bool is_pointwise_gemm(const Node& layer) {
    const auto& a = std::get<ConvAttrs>(layer.attrs);
    return a.kernel == std::vector<int64_t>{1, 1} && a.stride == std::vector<int64_t>{1, 1} &&
           a.padding == std::vector<int64_t>{0, 0} && a.groups == 1;
  }

  // Activation rows each planned layer's GEMM reads at the example input
  // (N*H*W for a conv), and each convolution's input, from the float graph's
  // shapes, before any edit.
  void record_gemm_rows(const std::vector<FusedLayer>& plan) {
    for (const FusedLayer& f : plan) {
      if (!f.int8()) continue;
      if (f.layer->is_leaf(LeafKind::Conv2d)) {
        try {
          const Shape& s = g_.shape(f.input());  // NCHW
          const auto& a = std::get<ConvAttrs>(f.layer->attrs);
          if (s.size() == 4) conv_inputs_[f.layer] = ConvInput{s[0], s[2], s[3], a.stride, a.padding, a.dilation};
        } catch (const Error&) {
        }
      }
      try {
        const Shape& s = g_.shape(f.layer->output());
        int64_t numel = 1;
        for (int64_t d : s) numel *= d;
        const int64_t channels = s.size() == 4 ? s[1] : s.back();  // NCHW conv output, [..., N] linear output
        if (channels > 0) gemm_rows_[f.layer] = numel / channels;
      } catch (const Error&) {
      }
    }
  }

  // The packing of `layer`'s INT8 weight: a sparse one (packed) where the
  // layer fits the sparse kernels and, in "auto" mode, one is measured
  // faster; noted in the layer's report.
  FormatChoice weight_format(const Node& layer, const at::Tensor& q, int64_t input_zero_point, LayerReport& rep) {
    FormatChoice c;
    const std::string misfit = sparse_kernel_fit(layer);
    const bool conv_op = layer.is_leaf(LeafKind::Conv2d) && !is_pointwise_gemm(layer);
    auto rows = gemm_rows_.find(&layer);
    auto input = conv_inputs_.find(&layer);
    if (!misfit.empty() || rows == gemm_rows_.end() || (conv_op && input == conv_inputs_.end())) {
      c.sparsity = q.numel() ? q.eq(0).to(at::kDouble).mean().item<double>() : 0.0;
      c.reason = misfit.empty() ? "the layer's shape at the example input is unknown" : misfit;
    } else if (conv_op) {
      c = choose_conv_weight_format(q, input->second, input_zero_point, options_.sparse);
    } else {
      c = choose_weight_format(q, rows->second, input_zero_point, options_.sparse);
    }
    rep.weight_format = c.format;
    rep.format_reason = c.reason;
    rep.weight_sparsity = c.sparsity;
    return c;
  }

  // The layer's int8 weight: per-channel max|w| / 127, or the fixed
  // (trained) scales rounded as PyTorch's fake quantization rounds.
  QuantizedWeight fixed_weight(const Node& layer) {
    const at::Tensor& weight = g_.param(layer.params.at("weight"));
    if (!fixed_) return quantize_weight_per_channel(weight);
    auto it = fixed_->weight_scales.find(layer.module);
    if (it == fixed_->weight_scales.end()) return quantize_weight_per_channel(weight);
    at::Tensor wf = weight.detach().to(at::kFloat).contiguous();
    at::Tensor scale = it->second.to(at::kFloat).contiguous();
    std::vector<int64_t> bshape(static_cast<size_t>(wf.dim()), 1);
    bshape[0] = wf.size(0);
    at::Tensor q = (wf * scale.reciprocal().reshape(bshape)).round().clamp(-127, 127).to(at::kChar);
    return {q, scale};
  }

  LayerReport float_layer(const FusedLayer& f) {
    LayerReport rep;
    rep.name = f.name();
    rep.ops = f.fused_ops();
    rep.precision = "float";
    rep.reason = f.float_reason;
    return rep;
  }

  // The float values between INT8 layers are NHWC tensors seen as NCHW (an
  // INT8 layer's float output, a dequantized activation permuted back), and
  // view() refuses such strides where the float model, traced on contiguous
  // tensors, had none: a model with `x.view(n, -1)` after a float op on an
  // INT8 convolution's result failed to quantize. reshape() computes the
  // same and aliases the same wherever view() would have worked; it copies
  // only where view() would have failed.
  void reshape_instead_of_view() {
    static const c10::Symbol view = c10::Symbol::fromQualString("aten::view");
    static const c10::Symbol view_as = c10::Symbol::fromQualString("aten::view_as");
    for (Node* n : g_.node_list()) {
      if (n->erased() || !(n->is_op(view) || n->is_op(view_as))) continue;
      auto guard = g_.inserting_before(n);
      OpOptions o;
      o.scope = n->scope;
      const ValueId y = add_op(g_, n->is_op(view) ? "aten::reshape" : "aten::reshape_as", n->inputs(), o);
      g_.replace_all_uses(n->output(), val(y));
      g_.erase(n);
    }
  }

  void list_float_nodes(const std::map<const Node*, std::string>& float_reason) {
    for (const Node& n : g_.nodes()) {
      if (created_.count(n.id())) continue;
      bool tensor_out = false;
      for (ValueId v : n.outputs()) tensor_out = tensor_out || g_.value(v).is_tensor();
      if (!tensor_out) continue;  // sizes, lists: no data to quantize
      auto it = float_reason.find(&n);
      std::string why = it != float_reason.end() ? it->second
                                                 : "no INT8 kernel for " + n.op_name() +
                                                       ": computes in float between dequantize_u8 and quantize_u8";
      report_.float_nodes.push_back({n.describe(), why});
    }
  }

  Graph& g_;
  const std::map<ValueId, Observer>& observers_;
  const QuantizeOptions& options_;
  QuantizeReport& report_;
  const FixedParams* fixed_;
  QatModel* qat_;
  ActivationCodes codes_;  // the activations' code range (QuantizeOptions::activations)
  std::map<ValueId, size_t> rank_;
  std::map<ValueId, int64_t> sample_numel_;
  std::map<ValueId, QValue> twins_;
  std::map<const Node*, int64_t> gemm_rows_;
  std::map<const Node*, ConvInput> conv_inputs_;
  std::set<ValueId> int8_reads_;
  std::set<int> created_;
};

}  // namespace

void convert(Graph& g, const std::vector<FusedLayer>& plan, const std::map<ValueId, Observer>& observers,
             const QuantizeOptions& options, QuantizeReport& report, const FixedParams* fixed) {
  Converter(g, observers, options, report, fixed).run(plan);
  g.lint();
}

void insert_fake_quant(Graph& g, const std::vector<FusedLayer>& plan, const std::map<ValueId, Observer>& observers,
                       QatModel& qat) {
  Converter(g, observers, qat.options.calibration, qat.plan_report, nullptr, &qat).run(plan);
  g.lint();
}

}  // namespace compress::quant
