// plan_layers: which conv / linear leaves become INT8 ops and what their
// epilogue absorbs (quantize.h).
#include <cmath>
#include <limits>
#include <set>

#include "compress/error.h"
#include "compress/ir/match.h"
#include "compress/quantization/quantize.h"
#include "module_path.h"

namespace compress::quant {

using detail::under_module;

ValueId FusedLayer::input() const { return layer->input().value; }

std::string FusedLayer::fused_ops() const {
  std::string s = layer->op_name();
  if (add) s += " + " + add->op_name();
  if (act) s += " + " + act->op_name();
  return s;
}

namespace {

const c10::Symbol kRelu = c10::Symbol::fromQualString("aten::relu");
const c10::Symbol kRelu6 = c10::Symbol::fromQualString("aten::relu6");
const c10::Symbol kHardtanh = c10::Symbol::fromQualString("aten::hardtanh");
const c10::Symbol kClamp = c10::Symbol::fromQualString("aten::clamp");
const c10::Symbol kAdd = c10::Symbol::fromQualString("aten::add");

// A number constant, or `none_value` for None; false for anything else.
bool number_or_none(const Arg& a, double none_value, double& out) {
  if (a.kind != Arg::Kind::Constant) return false;
  const c10::IValue& c = a.constant;
  if (c.isNone()) out = none_value;
  else if (c.isDouble()) out = c.toDouble();
  else if (c.isInt()) out = static_cast<double>(c.toInt());
  else return false;
  return true;
}

// The bounds of an activation the epilogue can express (its clamp on the
// output codes, with 0 inside so that the zero point exists); false otherwise.
bool activation_bounds(const Node& n, double& lo, double& hi) {
  const double inf = std::numeric_limits<double>::infinity();
  if (n.is_op(kRelu)) {
    lo = 0;
    hi = inf;
    return true;
  }
  if (n.is_op(kRelu6)) {
    lo = 0;
    hi = 6;
    return true;
  }
  if ((n.is_op(kHardtanh) || n.is_op(kClamp)) && n.inputs().size() >= 3) {
    if (!number_or_none(n.input(1), -inf, lo) || !number_or_none(n.input(2), inf, hi)) return false;
    return lo <= 0 && hi >= 0 && lo < hi;
  }
  return false;
}

// add(a, b, alpha=1) of two tensors of one shape: the epilogue's residual.
bool residual_add(const Graph& g, const Node& n) {
  if (!n.is_op(kAdd) || n.inputs().size() != 3 || !n.input(0).is_value() || !n.input(1).is_value()) return false;
  double alpha = 0;
  if (!number_or_none(n.input(2), 1, alpha) || alpha != 1) return false;
  ValueId a = n.input(0).value, b = n.input(1).value;
  if (!g.value(a).is_tensor() || !g.value(b).is_tensor()) return false;
  return g.shape(a) == g.shape(b) && g.dtype(a) == at::kFloat && g.dtype(b) == at::kFloat;
}

int calls_of_module(const Graph& g, const std::string& module) {
  int count = 0;
  for (const Node& n : g.nodes()) count += n.is_leaf() && n.module == module;
  return count;
}

// The exclude entry that names this layer (its module, a parent module, or its output), if any.
std::string excluded_by(const Graph& g, const Node& layer, const std::vector<std::string>& exclude) {
  for (const auto& e : exclude)
    if (under_module(layer.module, e) || g.name_of(layer.output()) == e) return e;
  return "";
}

// Why `n` (a conv / linear leaf) cannot run in INT8; empty when it can.
std::string layer_reason(const Graph& g, const Node& n, const std::vector<std::string>& exclude) {
  std::string e = excluded_by(g, n, exclude);
  if (!e.empty()) return "excluded by the user (" + e + ")";
  if (n.is_leaf(LeafKind::Conv1d)) return "Conv1d: the INT8 kernels have 2-D convolution only";
  if (!n.input().is_value()) return "its input is not a computed tensor";
  ValueId x = n.input().value;
  if (g.dtype(x) != at::kFloat) return "its input is not float32";
  size_t rank = g.shape(x).size();
  if (n.is_leaf(LeafKind::Conv2d)) {
    const auto& a = std::get<ConvAttrs>(n.attrs);
    bool depthwise = a.groups == a.in_channels && a.groups == a.out_channels;
    if (a.groups != 1 && !depthwise)
      return "grouped convolution (groups=" + std::to_string(a.groups) +
             "): conv2d_int8 covers groups=1 and depthwise only";
    if (rank != 4) return "its input is not 4-D (N, C, H, W)";
  } else if (rank == 4) {
    return "a linear layer over a 4-D input (activations are NHWC in INT8)";
  }
  if (calls_of_module(g, n.module) != 1) return n.module + " is called more than once";
  return "";
}

bool is_layer(const Node& n) {
  return n.is_leaf(LeafKind::Conv1d) || n.is_leaf(LeafKind::Conv2d) || n.is_leaf(LeafKind::Linear);
}

void check_exclude(const Graph& g, const std::vector<std::string>& exclude) {
  for (const auto& e : exclude) {
    if (g.find_value(e)) continue;
    bool found = false;
    std::vector<std::string> candidates;
    for (const Node& n : g.nodes()) {
      if (!n.is_leaf()) continue;
      found = found || under_module(n.module, e);
      candidates.push_back(n.module);
    }
    if (found) continue;
    for (size_t v = 0; v < g.num_values(); ++v) candidates.push_back(g.name_of(static_cast<ValueId>(v)));
    std::string close = closest_name(e, candidates);
    bad_input("exclude '" + e + "': the model has no module or value of that name" +
              (close.empty() ? "" : " (did you mean '" + close + "'?)"));
  }
}

}  // namespace

std::vector<FusedLayer> plan_layers(const Graph& g, const std::vector<std::string>& exclude) {
  check_exclude(g, exclude);
  auto layer_ok = [&](const Graph& gr, const Node& n) { return layer_reason(gr, n, exclude).empty(); };
  auto act_ok = [](const Graph&, const Node& n) {
    double lo, hi;
    return activation_bounds(n, lo, hi);
  };
  const std::vector<std::string> layers = {"nn.Conv2d", "nn.Linear"};
  const std::vector<std::string> acts = {"aten::relu", "aten::relu6", "aten::hardtanh", "aten::clamp"};
  // Longest first: layer -> add -> act, layer -> add, layer -> act. The
  // add's operand order is spelled out instead of commutative(): the matcher
  // checks outside users after choosing an order, so when both operands are
  // layers (mobilenet_v2) the first order would fail on the shared one and
  // the other order would never be tried.
  struct Shape {
    bool add, layer_first, act;
  };
  const Shape shapes[] = {{true, true, true},   {true, false, true}, {true, true, false},
                          {true, false, false}, {false, true, true}};
  std::vector<Pattern> patterns;
  for (const Shape& sh : shapes) {
    Pattern p;
    auto layer = p.node(layers);
    p.where(layer_ok);
    auto last = layer;
    if (sh.add) {
      auto other = p.any();
      last = sh.layer_first ? p.node({"aten::add"}, {layer, other}) : p.node({"aten::add"}, {other, layer});
      p.where(residual_add);
    }
    if (sh.act) {
      p.node(acts, {last});
      p.where(act_ok);
    }
    patterns.push_back(std::move(p));
  }
  std::map<const Node*, FusedLayer> fused;
  std::set<const Node*> claimed;
  for (const Pattern& p : patterns) {
    for (const Match& m : find_matches(g, p)) {
      bool free = true;
      for (Node* n : m.nodes) free = free && (!n || !claimed.count(n));
      if (!free) continue;
      FusedLayer f;
      f.layer = m.nodes[0];
      for (Node* n : m.nodes) {
        if (!n) continue;
        claimed.insert(n);
        if (n->is_op(kAdd)) {
          f.add = n;
          const Arg& a = n->input(0);
          f.residual = a.is_value(f.layer->output()) ? n->input(1).value : a.value;
        } else if (n != f.layer) {
          f.act = n;
          activation_bounds(*n, f.clamp_lo, f.clamp_hi);
          f.relu = f.clamp_lo == 0;
        }
      }
      fused[f.layer] = f;
    }
  }
  std::vector<FusedLayer> plan;
  for (Node& n : g.nodes()) {
    if (!is_layer(n)) continue;
    auto it = fused.find(&n);
    if (it != fused.end()) {
      plan.push_back(it->second);
      continue;
    }
    FusedLayer f;
    f.layer = &n;
    f.float_reason = layer_reason(g, n, exclude);
    plan.push_back(f);
  }
  return plan;
}

}  // namespace compress::quant
