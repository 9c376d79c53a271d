// Dependency groups: a walk over the graph in order that gives every tensor
// value a channel layout (which dimension carries channels, and which
// "channel spaces" fill it, in order), unifies spaces that ops couple, and
// records where each space's channels sit in the parameters.
#include "compress/pruning/groups.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "compress/error.h"
#include "compress/ir/leaf.h"

namespace compress::pruning {

int GroupAnalysis::find(const std::string& name) const {
  for (size_t i = 0; i < groups.size(); ++i)
    if (groups[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace {

// A run of channels of one space inside a value's channel dimension; each
// channel spans `stride` consecutive positions.
struct Segment {
  int space = -1;
  int64_t length = 0;
  int64_t stride = 1;
};

struct Layout {
  int dim = 1;  // non-negative: the channel dimension of the value
  std::vector<Segment> segments;
};

// A parameter read directly by the model's code (a positional embedding, a
// class token), not owned by a layer: value dimension d is its dimension
// d - offset (broadcasting aligns trailing dimensions).
struct FreeParam {
  std::string param;
  int64_t offset = 0;
};

struct Space {
  int parent = -1;
  int64_t length = 0;
  std::string name;  // when not the first producer's module path (attention heads)
  bool frozen = false;
  std::string reason;
  std::vector<ChannelSlice> slices;
  std::vector<const Node*> producers;
  // Set when the space was cut into consecutive pieces (Analyzer::cut) or
  // coarsened (Analyzer::coarsen): it is gone, and every layout naming it
  // names its pieces instead, each channel spread over `piece_stride` times
  // the positions.
  std::vector<int> pieces;
  int64_t piece_stride = 1;
};

class Analyzer {
 public:
  explicit Analyzer(const Graph& g) : g_(g) {}

  GroupAnalysis run() {
    if (g_.example_inputs().empty() && !g_.inputs().empty())
      bad_input("pruning needs the model's input shape (e.g. --input-shape 1,3,224,224)");
    g_.infer_shapes();
    count_calls();
    for (ValueId v : g_.inputs()) {
      if (!g_.value(v).is_tensor() || rank(v) < 2) continue;
      int s = new_space(g_.shape(v)[1]);
      freeze(s, "the model's input channels");
      layouts_[v] = Layout{1, {Segment{s, g_.shape(v)[1], 1}}};
    }
    for (const Node& n : g_.nodes()) visit(n);
    for (const Arg& a : g_.outputs())
      if (a.is_value()) freeze_value(a.value, "returned by the model");
    return collect();
  }

 private:
  // ---- spaces (union-find) ----
  int new_space(int64_t length) {
    Space s;
    s.parent = static_cast<int>(spaces_.size());
    s.length = length;
    spaces_.push_back(s);
    return s.parent;
  }
  int root(int s) {
    while (spaces_[s].parent != s) s = spaces_[s].parent = spaces_[spaces_[s].parent].parent;
    return s;
  }
  void freeze(int s, const std::string& why) {
    const int r = root(s);
    if (!spaces_[r].pieces.empty()) {
      for (int p : std::vector<int>(spaces_[r].pieces)) freeze(p, why);
      return;
    }
    if (!spaces_[r].frozen) spaces_[r].reason = why;
    spaces_[r].frozen = true;
  }
  void unite(int a, int b, const Node& where) {
    a = root(a);
    b = root(b);
    if (a == b) return;
    if (!spaces_[a].pieces.empty() || !spaces_[b].pieces.empty())
      failure("pruning analysis: a space that was cut is coupled at " + where.describe());
    if (spaces_[a].length != spaces_[b].length) {
      freeze(a, "channel counts disagree at " + where.describe());
      freeze(b, "channel counts disagree at " + where.describe());
      return;
    }
    Space& keep = spaces_[a];
    Space& gone = spaces_[b];
    gone.parent = a;
    if (gone.frozen && !keep.frozen) keep.reason = gone.reason;
    keep.frozen |= gone.frozen;
    keep.slices.insert(keep.slices.end(), gone.slices.begin(), gone.slices.end());
    keep.producers.insert(keep.producers.end(), gone.producers.begin(), gone.producers.end());
  }

  // Cuts space `s` into consecutive pieces of the given lengths (summing to
  // its length), so that the pieces can be coupled with different spaces:
  // channel c of piece k is channel (lengths before k) + c of the space.
  // Every slice is split the same way, every layout naming the space names
  // the pieces instead. Used where a grouped convolution or a coupling op
  // cuts channels finer than the layer that made them.
  void cut(int s, const std::vector<int64_t>& lengths) {
    const int r = root(s);
    std::vector<int> pieces;
    int64_t start = 0;
    for (int64_t len : lengths) {
      pieces.push_back(derive(r, len, start, 1));
      start += len;
    }
    retire(r, pieces, 1);
  }
  // Merges every `factor` consecutive channels of space `s` into one, so that
  // it can be coupled position by position with channels spread over
  // `factor` times as many positions (a branch's output concatenated beside a
  // shuffled passthrough, ShuffleNet): the channels then go `factor` at a time.
  bool coarsen(int s, int64_t factor) {
    const int r = root(s);
    if (factor < 2 || spaces_[r].length % factor != 0) return false;
    retire(r, {derive(r, spaces_[r].length / factor, 0, factor)}, factor);
    return true;
  }
  // A new space of `length` channels made of space r's from channel `start`
  // on, each spread over `factor` of r's channels; r's state and producers carry over.
  int derive(int r, int64_t length, int64_t start, int64_t factor) {
    const int p = new_space(length);
    Space& piece = spaces_[p];
    const Space& whole = spaces_[r];
    piece.name = whole.name;
    piece.frozen = whole.frozen;
    piece.reason = whole.reason;
    piece.producers = whole.producers;
    for (ChannelSlice slice : whole.slices) {
      slice.offset += start * slice.stride;
      slice.stride *= factor;
      piece.slices.push_back(slice);
    }
    return p;
  }
  // Space r is gone: every layout names `pieces` instead.
  void retire(int r, std::vector<int> pieces, int64_t factor) {
    spaces_[r].pieces = std::move(pieces);
    spaces_[r].piece_stride = factor;
    spaces_[r].slices.clear();
    spaces_[r].producers.clear();
    for (auto& kv : layouts_) rewrite(kv.second);
  }
  // Replaces segments of spaces that were cut or coarsened by their pieces.
  void rewrite(Layout& l) {
    for (size_t i = 0; i < l.segments.size();) {
      const Segment seg = l.segments[i];
      const Space& sp = spaces_[root(seg.space)];
      if (sp.pieces.empty()) {
        ++i;
        continue;
      }
      std::vector<Segment> parts;
      for (int p : sp.pieces) parts.push_back(Segment{p, spaces_[p].length, seg.stride * sp.piece_stride});
      l.segments.erase(l.segments.begin() + static_cast<std::ptrdiff_t>(i));
      l.segments.insert(l.segments.begin() + static_cast<std::ptrdiff_t>(i), parts.begin(), parts.end());
    }
  }

  // Cuts the segment of `l` that spans position `at` of its channel
  // dimension so that a segment starts there. False when `at` falls inside
  // one channel's spread (stride) and cannot be a boundary.
  bool cut_at(const Layout& l, int64_t at) {
    int64_t start = 0;
    for (const Segment& seg : l.segments) {
      const int64_t end = start + seg.length * seg.stride;
      if (at > start && at < end) {
        if ((at - start) % seg.stride != 0) return false;
        const int64_t first = (at - start) / seg.stride;
        cut(seg.space, {first, seg.length - first});
        return true;
      }
      start = end;
    }
    return true;
  }
  static int64_t positions(const Layout& l) {
    int64_t n = 0;
    for (const Segment& seg : l.segments) n += seg.length * seg.stride;
    return n;
  }
  // The segments of `l` within positions [begin, end) (boundaries there already).
  static Layout part_of(const Layout& l, int64_t begin, int64_t end) {
    Layout part{l.dim, {}};
    int64_t start = 0;
    for (const Segment& seg : l.segments) {
      if (start >= begin && start < end) part.segments.push_back(seg);
      start += seg.length * seg.stride;
    }
    return part;
  }
  // Cuts value v's channels into `blocks` equal blocks and couples them
  // position by position: what keeps the blocks equal in size when they
  // shrink (a grouped convolution's input, chunk, a channel shuffle's view).
  // Returns the first block's layout (every block's, once coupled), or
  // nothing when the blocks cannot be formed (its channels are frozen then).
  std::optional<Layout> couple_blocks(ValueId v, int64_t blocks, const Node& n) {
    const int64_t total = positions(layouts_.at(v));
    if (blocks < 1 || total % blocks != 0) {
      freeze_layout(layouts_.at(v), "channels cut into " + std::to_string(blocks) + " unequal blocks at " + n.describe());
      return std::nullopt;
    }
    const int64_t size = total / blocks;
    for (int64_t k = 1; k < blocks; ++k) {
      if (!cut_at(layouts_.at(v), k * size)) {
        freeze_layout(layouts_.at(v), "a block boundary falls inside a channel's spread at " + n.describe());
        return std::nullopt;
      }
    }
    for (int64_t k = 1; k < blocks; ++k)
      if (!unify(part_of(layouts_.at(v), 0, size), part_of(layouts_.at(v), k * size, (k + 1) * size), n)) return std::nullopt;
    return part_of(layouts_.at(v), 0, size);
  }

  // ---- layouts ----
  const Layout* layout(const Arg& a) const {
    if (!a.is_value()) return nullptr;
    auto it = layouts_.find(a.value);
    return it == layouts_.end() ? nullptr : &it->second;
  }
  size_t rank(ValueId v) const { return g_.shape(v).size(); }
  void freeze_layout(const Layout& l, const std::string& why) {
    for (const Segment& s : l.segments) freeze(s.space, why);
  }
  void freeze_value(ValueId v, const std::string& why) {
    auto it = layouts_.find(v);
    if (it != layouts_.end()) freeze_layout(it->second, why);
  }
  void freeze_inputs(const Node& n, const std::string& why) {
    for (const Arg& a : n.inputs())
      if (const Layout* l = layout(a)) freeze_layout(*l, why);
    for (const Arg& a : n.inputs()) {
      // A list of tensors carries its elements' channels.
      if (!a.is_value()) continue;
      auto it = lists_.find(a.value);
      if (it != lists_.end())
        for (ValueId e : it->second) freeze_value(e, why);
    }
  }
  // Unifies two layouts channel by channel. Where one is cut into segments
  // the other is not (a squeeze-excitation gate made whole, multiplied with
  // a grouped convolution's output made group by group), the coarser
  // segment's space is cut to match first. Freezes both when their channel
  // counts or spreads (strides) differ.
  bool unify(const Layout& a0, const Layout& b0, const Node& where) {
    Layout a = a0, b = b0;
    for (bool again = true; again;) {
      again = false;
      rewrite(a);
      rewrite(b);
      int64_t start = 0;  // position in the channel dimension
      size_t i = 0;
      for (; i < a.segments.size() && i < b.segments.size(); ++i) {
        const Segment &sa = a.segments[i], &sb = b.segments[i];
        if (sa.stride != sb.stride) {
          // The finer one's channels go `factor` at a time, if they can.
          const Segment& fine = sa.stride < sb.stride ? sa : sb;
          const int64_t coarse_stride = std::max(sa.stride, sb.stride);
          if (coarse_stride % fine.stride == 0 && coarsen(fine.space, coarse_stride / fine.stride)) again = true;
          break;
        }
        if (sa.length != sb.length) {
          again = cut_at(sa.length < sb.length ? b : a, start + std::min(sa.length, sb.length) * sa.stride);
          break;
        }
        start += sa.length * sa.stride;
      }
      if (again) continue;
      if (i != a.segments.size() || i != b.segments.size()) {
        freeze_layout(a, "operands cut into channel groups differently at " + where.describe());
        freeze_layout(b, "operands cut into channel groups differently at " + where.describe());
        return false;
      }
    }
    for (size_t i = 0; i < a.segments.size(); ++i) unite(a.segments[i].space, b.segments[i].space, where);
    return true;
  }

  // ---- slices ----
  void add_slices(const Layout& l, const Node& leaf, const std::string& role, int dim, ChannelSlice::Role kind) {
    auto it = leaf.params.find(role);
    if (it == leaf.params.end()) return;
    int64_t offset = 0;
    for (const Segment& s : l.segments) {
      ChannelSlice slice{it->second, dim, offset, s.stride, kind, &leaf};
      spaces_[root(s.space)].slices.push_back(slice);
      offset += s.length * s.stride;
    }
  }
  Layout produce(const Node& leaf, int64_t channels, int dim) {
    int s = new_space(channels);
    spaces_[s].producers.push_back(&leaf);
    if (calls_[leaf.module] > 1) freeze(s, leaf.module + " is called more than once");
    return Layout{dim, {Segment{s, channels, 1}}};
  }

  void count_calls() {
    for (const Node& n : g_.nodes()) {
      if (n.is_leaf()) ++calls_[n.module];
      for (const Arg& a : n.inputs())
        if (a.kind == Arg::Kind::Param) ++param_uses_[a.param];
    }
  }

  // ---- free parameters ----
  // The free parameter an operand is (a parameter, or a parameter expanded), if any.
  std::optional<FreeParam> free_param(const Arg& a, size_t out_rank) const {
    if (a.kind == Arg::Kind::Param) return FreeParam{a.param, int64_t(out_rank) - g_.param(a.param).dim()};
    if (!a.is_value()) return std::nullopt;
    auto it = free_params_.find(a.value);
    if (it == free_params_.end()) return std::nullopt;
    FreeParam f = it->second;
    f.offset += int64_t(out_rank) - int64_t(rank(a.value));
    return f;
  }
  // Couples a free parameter with the channels of `l` it meets in an
  // elementwise op or a concatenation along another dimension: its
  // dimension at the channels shrinks with them, or it broadcasts along them
  // (size 1, or too few dimensions). False when it cannot follow: read
  // elsewhere too, or cut differently.
  bool attach(const FreeParam& f, const Layout& l, const Node& n) {
    const at::Tensor& t = g_.param(f.param);
    const int64_t d = l.dim - f.offset;
    if (d < 0 || t.size(d) == 1) return true;
    int64_t channels = 0;
    for (const Segment& seg : l.segments) channels += seg.length * seg.stride;
    if (t.size(d) != channels || param_uses_[f.param] != 1) return false;
    int64_t offset = 0;
    for (const Segment& seg : l.segments) {
      spaces_[root(seg.space)].slices.push_back(
          ChannelSlice{f.param, int(d), offset, seg.stride, ChannelSlice::Role::Through, &n});
      offset += seg.length * seg.stride;
    }
    return true;
  }

  // ---- the walk ----
  void visit(const Node& n) {
    if (n.is_leaf()) return visit_leaf(n);
    const std::string op = n.op_name();
    if (op == "prim::ListConstruct") {
      std::vector<ValueId> elems;
      std::vector<Arg> params;
      for (const Arg& a : n.inputs()) {
        if (a.is_value() && layouts_.count(a.value)) elems.push_back(a.value);
        else if (a.kind == Arg::Kind::Param || (a.is_value() && free_params_.count(a.value))) params.push_back(a);
      }
      lists_[n.output()] = elems;
      if (!params.empty()) list_params_[n.output()] = params;
      return;
    }
    if (is_shape_query(op)) return;  // reads sizes, not channels
    if (op == "aten::chunk" || op == "aten::unsafe_chunk" || op == "aten::split" || op == "aten::unsafe_split" ||
        op == "aten::split_with_sizes")
      return split_list(n);
    if (op == "prim::ListUnpack") return unpack(n);
    if (n.outputs().size() != 1 || !g_.value(n.output()).is_tensor()) return freeze_inputs(n, "read by " + op);
    const ValueId out = n.output();
    if (is_unary(op)) return pass_through(n, 0);
    if (is_binary(op)) return elementwise(n);
    if (is_pool(op)) return pass_through(n, 0);
    if (op == "aten::mean" || op == "aten::sum") return reduce(n);
    if (op == "aten::flatten") return flatten(n);
    if (op == "aten::view" || op == "aten::reshape") return reshape(n);
    if (op == "aten::unsqueeze") return unsqueeze(n);
    if (op == "aten::cat") return concat(n);
    if (op == "aten::transpose" || op == "aten::permute") return move_dims(n);
    if (op == "aten::select" || op == "aten::slice") return index(n);
    if (op == "aten::expand") return expand(n);
    (void)out;
    freeze_inputs(n, "read by " + op + " (its channel rule is unknown)");
  }

  static bool is_shape_query(const std::string& op) {
    return op == "aten::size" || op == "aten::dim" || op == "aten::len" || op == "prim::NumToTensor" ||
           op == "aten::Int";
  }
  static bool is_unary(const std::string& op) {
    static const std::set<std::string> ops = {
        "aten::relu", "aten::relu6", "aten::hardtanh", "aten::sigmoid", "aten::hardsigmoid", "aten::hardswish",
        "aten::silu", "aten::gelu", "aten::tanh", "aten::leaky_relu", "aten::elu", "aten::dropout",
        "aten::feature_dropout", "aten::alpha_dropout", "aten::clamp", "aten::contiguous", "aten::clone"};
    return ops.count(op) != 0;
  }
  static bool is_binary(const std::string& op) {
    return op == "aten::add" || op == "aten::sub" || op == "aten::mul" || op == "aten::div";
  }
  static bool is_pool(const std::string& op) {
    return op == "aten::max_pool2d" || op == "aten::avg_pool2d" || op == "aten::adaptive_avg_pool2d" ||
           op == "aten::adaptive_max_pool2d" || op == "aten::max_pool1d" || op == "aten::avg_pool1d" ||
           op == "aten::adaptive_avg_pool1d";
  }

  void pass_through(const Node& n, size_t operand) {
    if (const Layout* l = layout(n.input(operand))) {
      if (rank(n.output()) == rank(n.input(operand).value)) layouts_[n.output()] = *l;
      else freeze_inputs(n, "rank changes at " + n.describe());
    }
  }

  // add / sub / mul / div: operands that carry channels at the same
  // dimension are coupled; one broadcast along it (size 1) is not. A tensor
  // operand without channels of its own (whatever its place) is fine only if
  // it broadcasts along them; otherwise every operand's channels freeze.
  void elementwise(const Node& n) {
    const Layout* found = nullptr;
    const ValueId out = n.output();
    std::vector<ValueId> unknown;
    std::vector<FreeParam> params;  // parameters with several elements (a positional embedding)
    for (size_t i = 0; i < 2 && i < n.inputs().size(); ++i) {
      const Arg& a = n.input(i);
      if (a.kind == Arg::Kind::Constant && a.constant.isTensor()) {
        if (a.constant.toTensor().numel() > 1) return freeze_inputs(n, "combined with a fixed tensor at " + n.describe());
        continue;
      }
      if (auto f = free_param(a, rank(out))) {
        if (g_.param(f->param).numel() > 1) params.push_back(*f);
        continue;
      }
      const Layout* l = layout(a);
      if (!l) {
        if (a.is_value() && g_.value(a.value).is_tensor()) unknown.push_back(a.value);
        continue;
      }
      const Shape& s = g_.shape(a.value);
      if (s.size() != rank(out) || s[l->dim] == 1) continue;  // broadcast along the channels
      if (!found) found = l;
      else if (!unify(*found, *l, n)) return;
    }
    if (!found) {
      if (!params.empty()) freeze_inputs(n, "combined with a fixed tensor at " + n.describe());
      return;
    }
    for (ValueId v : unknown) {
      const Shape& s = g_.shape(v);
      const size_t r = rank(out);
      if (s.size() + found->dim < r) continue;  // too few dims to reach the channels: broadcast
      const size_t d = found->dim + s.size() - r;
      if (s[d] != 1) return freeze_inputs(n, "combined with a tensor of unknown channels at " + n.describe());
    }
    for (const FreeParam& f : params)
      if (!attach(f, *found, n))
        return freeze_inputs(n, "combined with parameter " + f.param + ", which cannot shrink with the channels, at " +
                                    n.describe());
    layouts_[out] = *found;
  }

  // Operand i if it is a constant int.
  static std::optional<int64_t> int_operand(const Node& n, size_t i) {
    if (i >= n.inputs().size() || n.input(i).kind != Arg::Kind::Constant || !n.input(i).constant.isInt()) return std::nullopt;
    return n.input(i).constant.toInt();
  }

  // Whether entry `entry` of the size list operand `operand` of `n` follows
  // the channel count when it changes: -1, or the size of `source`'s
  // dimension `dim` read at run time. A size written as a number (a traced
  // hidden_dim) would not shrink with the channels.
  // With `divisor` > 1 the size must be source's size divided by that
  // number (a channel shuffle's channels per group: size(x, 1) // groups).
  bool size_follows(const Node& n, size_t operand, size_t entry, ValueId source, int64_t dim, int64_t divisor = 1) const {
    if (int_entry(n, operand, entry, -1)) return true;
    const Arg* e = list_entry(n, operand, entry);
    const Node* p = e && e->is_value() ? g_.producer(e->value) : nullptr;
    auto skip_casts = [&] {
      while (p && (p->op_name() == "aten::Int" || p->op_name() == "prim::NumToTensor") && p->input(0).is_value())
        p = g_.producer(p->input(0).value);
    };
    skip_casts();
    if (divisor > 1) {
      const std::string op = p ? p->op_name() : "";
      if ((op != "aten::floor_divide" && op != "aten::floordiv" && op != "aten::div") || p->inputs().size() < 2 ||
          !p->input(0).is_value() || p->input(1).kind != Arg::Kind::Constant)
        return false;
      const c10::IValue& by = p->input(1).constant;
      const bool exact = by.isInt() ? by.toInt() == divisor
                                    : by.isTensor() && by.toTensor().numel() == 1 && by.toTensor().item<double>() == double(divisor);
      if (!exact) return false;
      p = g_.producer(p->input(0).value);
      skip_casts();
    }
    if (!p || p->op_name() != "aten::size" || !p->input(0).is_value() || p->input(0).value != source) return false;
    const std::optional<int64_t> d = int_operand(*p, 1);
    return d && (*d == dim || *d + static_cast<int64_t>(rank(source)) == dim);
  }

  // transpose / permute: the channels move with their dimension.
  void move_dims(const Node& n) {
    const Layout* l = layout(n.input(0));
    if (!l) return;
    const int64_t r = static_cast<int64_t>(rank(n.output()));
    auto norm = [r](int64_t d) { return d < 0 ? d + r : d; };
    Layout out = *l;
    if (n.op_name() == "aten::transpose") {
      const std::optional<int64_t> first = int_operand(n, 1), second = int_operand(n, 2);
      if (!first || !second) return freeze_inputs(n, "transposed at unknown dimensions at " + n.describe());
      const int64_t a = norm(*first), b = norm(*second);
      if (l->dim == a) out.dim = int(b);
      else if (l->dim == b) out.dim = int(a);
    } else {
      if (n.inputs().size() < 2 || n.input(1).kind != Arg::Kind::Constant || !n.input(1).constant.isIntList())
        return freeze_inputs(n, "permuted in an unknown order at " + n.describe());
      const std::vector<int64_t> order = n.input(1).constant.toIntVector();
      out.dim = -1;
      for (size_t i = 0; i < order.size(); ++i)
        if (norm(order[i]) == l->dim) out.dim = int(i);
      if (out.dim < 0) return freeze_inputs(n, "permuted in an unknown order at " + n.describe());
    }
    layouts_[n.output()] = out;
  }

  // select / slice along another dimension: the channels stay (one
  // dimension earlier after a select before them); along the channels: frozen.
  void index(const Node& n) {
    const Layout* l = layout(n.input(0));
    if (!l) return;
    const std::optional<int64_t> at = int_operand(n, 1);
    if (!at) return freeze_inputs(n, "indexed at an unknown dimension at " + n.describe());
    const int64_t d = *at < 0 ? *at + static_cast<int64_t>(rank(n.input(0).value)) : *at;
    if (d == l->dim) return freeze_inputs(n, "indexed along its channels at " + n.describe());
    Layout out = *l;
    if (n.op_name() == "aten::select" && d < l->dim) --out.dim;
    layouts_[n.output()] = out;
  }

  // expand: a parameter expanded (a class token per sample) stays a free
  // parameter; channels keep their dimension, counted from the end.
  void expand(const Node& n) {
    const size_t r = rank(n.output());
    if (auto f = free_param(n.input(0), r)) {
      // Only a parameter whose every dimension wider than 1 is kept as it is
      // (-1): a class token's channels may shrink under it.
      const at::Tensor& t = g_.param(f->param);
      for (int64_t d = 0; d < t.dim(); ++d)
        if (t.size(d) > 1 && !size_follows(n, 1, static_cast<size_t>(d + f->offset), -1, -1)) return;
      free_params_[n.output()] = *f;
      return;
    }
    const Layout* l = layout(n.input(0));
    if (!l) return;
    const size_t in_rank = rank(n.input(0).value);
    if (r < in_rank) return freeze_inputs(n, "rank changes at " + n.describe());
    Layout out = *l;
    out.dim += static_cast<int>(r - in_rank);
    if (g_.shape(n.output())[out.dim] != g_.shape(n.input(0).value)[l->dim] ||
        !size_follows(n, 1, static_cast<size_t>(out.dim), n.input(0).value, l->dim))
      return freeze_inputs(n, "expanded to a fixed channel count at " + n.describe());
    layouts_[n.output()] = out;
  }

  // unsqueeze: the channels stay, one dimension later when the new one comes before them.
  void unsqueeze(const Node& n) {
    const Layout* l = layout(n.input(0));
    if (!l) return;
    const std::optional<int64_t> at = int_operand(n, 1);
    if (!at) return freeze_inputs(n, "unsqueezed at an unknown dimension at " + n.describe());
    const int64_t d = *at < 0 ? *at + static_cast<int64_t>(rank(n.output())) : *at;
    Layout out = *l;
    if (d <= out.dim) ++out.dim;
    layouts_[n.output()] = out;
  }

  void reduce(const Node& n) {
    const Layout* l = layout(n.input(0));
    if (!l) return;
    if (n.inputs().size() < 3 || n.input(1).kind != Arg::Kind::Constant || !n.input(1).constant.isIntList())
      return freeze_inputs(n, "reduced over unknown dimensions at " + n.describe());
    int64_t r = static_cast<int64_t>(rank(n.input(0).value));
    bool keepdim = n.input(2).kind == Arg::Kind::Constant && n.input(2).constant.isBool() && n.input(2).constant.toBool();
    int dim = l->dim;
    for (int64_t d : n.input(1).constant.toIntVector()) {
      if (d < 0) d += r;
      if (d == l->dim) return freeze_inputs(n, "reduced over its channels at " + n.describe());
      if (d < l->dim && !keepdim) --dim;
    }
    Layout out = *l;
    out.dim = dim;
    layouts_[n.output()] = out;
  }

  // Channels at `start` of a flatten spread over the flattened positions after them.
  void spread(const Node& n, const Layout& l, int64_t start, int64_t end) {
    const Shape& in = g_.shape(n.input(0).value);
    if (l.dim < start) {
      layouts_[n.output()] = l;
      return;
    }
    if (l.dim > end) {
      Layout out = l;
      out.dim -= static_cast<int>(end - start);
      layouts_[n.output()] = out;
      return;
    }
    if (l.dim != start) return freeze_inputs(n, "channels are not the first flattened dimension at " + n.describe());
    int64_t inner = 1;
    for (int64_t d = start + 1; d <= end; ++d) inner *= in[d];
    Layout out = l;
    for (Segment& s : out.segments) s.stride *= inner;
    layouts_[n.output()] = out;
  }

  void flatten(const Node& n) {
    const Layout* l = layout(n.input(0));
    if (!l) return;
    int64_t r = static_cast<int64_t>(rank(n.input(0).value));
    auto int_arg = [&](size_t i, int64_t dflt) {
      if (i < n.inputs().size() && n.input(i).kind == Arg::Kind::Constant && n.input(i).constant.isInt()) {
        int64_t v = n.input(i).constant.toInt();
        return v < 0 ? v + r : v;
      }
      return dflt;
    };
    spread(n, *l, int_arg(1, 0), int_arg(2, r - 1));
  }

  // view/reshape that merges the channel dim with the ones after it (x.view(N, -1)).
  void reshape(const Node& n) {
    const Layout* l = layout(n.input(0));
    if (!l) return;
    const Shape& in = g_.shape(n.input(0).value);
    const Shape& out = g_.shape(n.output());
    // Everything up to and including the channel dim unchanged: only the dims
    // after it are regrouped (the channel count read at run time, or -1).
    if (out.size() > static_cast<size_t>(l->dim) && std::equal(in.begin(), in.begin() + l->dim + 1, out.begin())) {
      if (!size_follows(n, 1, static_cast<size_t>(l->dim), n.input(0).value, l->dim))
        return freeze_inputs(n, "reshaped to a fixed channel count at " + n.describe());
      layouts_[n.output()] = *l;
      return;
    }
    if (split_or_merge(n, *l, in, out)) return;
    bool prefix_kept = out.size() == static_cast<size_t>(l->dim) + 1 &&
                       std::equal(in.begin(), in.begin() + l->dim, out.begin());
    if (!prefix_kept) return freeze_inputs(n, "reshaped across its channels at " + n.describe());
    spread(n, *l, l->dim, static_cast<int64_t>(in.size()) - 1);
  }

  // The views of a channel shuffle (ShuffleNet: [N, C, H, W] -> [N, G, C/G,
  // H, W] -> transpose(1, 2) -> [N, -1, H, W]), and their like:
  //  - split: channels [C] -> [G, C/G]. The G blocks must stay equal, so
  //    they are coupled position by position; the channels are then those of
  //    one block, in the inner dimension (C/G given as size(x, d) // G or -1);
  //  - merge with the dimension after: [C', G] -> [-1]: each channel spreads
  //    over G positions (the interleaving a shuffle's transpose makes);
  //  - merge with a dimension before that holds none: [G, C'] -> [-1]: the
  //    channels repeat in each of the G blocks.
  // True when `n` was one of these (its output's layout set).
  bool split_or_merge(const Node& n, const Layout& l, const Shape& in, const Shape& out) {
    const size_t d = static_cast<size_t>(l.dim);
    const ValueId source = n.input(0).value;
    auto same = [](const Shape& a, size_t from_a, const Shape& b, size_t from_b, size_t count) {
      return from_a + count <= a.size() && from_b + count <= b.size() &&
             std::equal(a.begin() + from_a, a.begin() + from_a + count, b.begin() + from_b);
    };
    if (out.size() == in.size() + 1 && same(in, 0, out, 0, d) && out[d] > 1 && out[d] * out[d + 1] == in[d] &&
        same(in, d + 1, out, d + 2, in.size() - d - 1)) {
      const int64_t blocks = out[d];
      if (!int_entry(n, 1, d, blocks) || !size_follows(n, 1, d + 1, source, l.dim, blocks)) return false;
      std::optional<Layout> block = couple_blocks(source, blocks, n);
      if (block) layouts_[n.output()] = Layout{l.dim + 1, block->segments};
      return true;
    }
    if (out.size() + 1 != in.size()) return false;
    if (d + 1 < in.size() && same(in, 0, out, 0, d) && out[d] == in[d] * in[d + 1] && same(in, d + 2, out, d + 1, in.size() - d - 2) &&
        int_entry(n, 1, d, -1)) {
      Layout merged = l;
      for (Segment& seg : merged.segments) seg.stride *= in[d + 1];
      layouts_[n.output()] = merged;
      return true;
    }
    if (d > 0 && same(in, 0, out, 0, d - 1) && out[d - 1] == in[d - 1] * in[d] && same(in, d + 1, out, d, in.size() - d - 1) &&
        int_entry(n, 1, d - 1, -1)) {
      Layout repeated{l.dim - 1, {}};
      for (int64_t k = 0; k < in[d - 1]; ++k)
        repeated.segments.insert(repeated.segments.end(), l.segments.begin(), l.segments.end());
      layouts_[n.output()] = repeated;
      return true;
    }
    return false;
  }

  // Whether entry `entry` of the size list operand `operand` is the constant `value`.
  bool int_entry(const Node& n, size_t operand, size_t entry, int64_t value) const {
    if (operand >= n.inputs().size()) return false;
    const Arg& a = n.input(operand);
    if (a.kind == Arg::Kind::Constant) {
      if (!a.constant.isIntList()) return false;
      const std::vector<int64_t> sizes = a.constant.toIntVector();
      return entry < sizes.size() && sizes[entry] == value;
    }
    const Arg* e = list_entry(n, operand, entry);
    return e && e->kind == Arg::Kind::Constant && e->constant.isInt() && e->constant.toInt() == value;
  }
  // Entry `entry` of a size list operand built at run time (prim::ListConstruct), or null.
  const Arg* list_entry(const Node& n, size_t operand, size_t entry) const {
    if (operand >= n.inputs().size() || !n.input(operand).is_value()) return nullptr;
    const Node* list = g_.producer(n.input(operand).value);
    if (!list || list->op_name() != "prim::ListConstruct" || entry >= list->inputs().size()) return nullptr;
    return &list->input(entry);
  }

  // chunk / split: a list of parts, read by one prim::ListUnpack. Along
  // another dimension each part has the input's channels. Along the
  // channels, chunk's parts must stay equal (torch.chunk splits evenly), so
  // they are coupled position by position; split's sizes are numbers in the
  // model, so the site is recorded (GroupAnalysis::splits) for removal to
  // rewrite them: equal parts (split(x, size)) coupled like chunk's, listed
  // sizes each part its own range.
  void split_list(const Node& n) {
    const Layout* l = layout(n.input(0));
    if (!l) return;
    const auto& uses = g_.value(n.output()).uses;
    if (uses.size() != 1 || uses[0].user->op_name() != "prim::ListUnpack")
      return freeze_inputs(n, "split into a list read by something other than an unpack at " + n.describe());
    const size_t parts = uses[0].user->outputs().size();
    const std::optional<int64_t> at = int_operand(n, 2);
    if (!at) return freeze_inputs(n, "split at an unknown dimension at " + n.describe());
    const int64_t d = *at < 0 ? *at + static_cast<int64_t>(rank(n.input(0).value)) : *at;
    if (d != l->dim) {
      parts_[n.output()] = std::vector<Layout>(parts, *l);
      return;
    }
    const bool chunk = n.op_name() == "aten::chunk" || n.op_name() == "aten::unsafe_chunk";
    const int64_t total = positions(*l);
    if (chunk) {
      if (int_operand(n, 1) != static_cast<int64_t>(parts))
        return freeze_inputs(n, "chunked into fewer parts than asked at " + n.describe());
      if (std::optional<Layout> block = couple_blocks(n.input(0).value, static_cast<int64_t>(parts), n))
        parts_[n.output()] = std::vector<Layout>(parts, *block);
      return;
    }
    // split(x, size): equal parts (coupled like chunk's), the size rewritten;
    // split(x, [sizes]): each part its own range, the sizes rewritten.
    const Arg& sizes = n.input(1);
    if (sizes.kind == Arg::Kind::Constant && sizes.constant.isInt()) {
      const int64_t size = sizes.constant.toInt();
      if (size <= 0 || total % size != 0 || total / size != static_cast<int64_t>(parts))
        return freeze_inputs(n, "split along its channels into unequal parts at " + n.describe());
      if (std::optional<Layout> block = couple_blocks(n.input(0).value, static_cast<int64_t>(parts), n)) {
        parts_[n.output()] = std::vector<Layout>(parts, *block);
        splits_.push_back({&n, true, {*block}});
      }
      return;
    }
    if (sizes.kind != Arg::Kind::Constant || !sizes.constant.isIntList())
      return freeze_inputs(n, "split along its channels at sizes not known at " + n.describe());
    const std::vector<int64_t> each = sizes.constant.toIntVector();
    if (each.size() != parts) return freeze_inputs(n, "split along its channels at sizes not known at " + n.describe());
    int64_t at_pos = 0;
    for (size_t k = 0; k + 1 < each.size(); ++k) {
      at_pos += each[k];
      if (!cut_at(*layout(n.input(0)), at_pos))
        return freeze_inputs(n, "a split falls inside a channel's spread at " + n.describe());
    }
    std::vector<Layout> layouts;
    at_pos = 0;
    for (int64_t size : each) {
      layouts.push_back(part_of(*layout(n.input(0)), at_pos, at_pos + size));
      at_pos += size;
    }
    parts_[n.output()] = layouts;
    splits_.push_back({&n, false, layouts});
  }

  void unpack(const Node& n) {
    if (!n.input(0).is_value()) return;
    auto it = parts_.find(n.input(0).value);
    if (it == parts_.end() || it->second.size() != n.outputs().size())
      return freeze_inputs(n, "read by " + n.op_name() + " (its channel rule is unknown)");
    for (size_t i = 0; i < n.outputs().size(); ++i) {
      Layout part = it->second[i];
      rewrite(part);
      layouts_[n.outputs()[i]] = part;
    }
  }

  void concat(const Node& n) {
    if (!n.input(0).is_value() || !lists_.count(n.input(0).value)) return freeze_inputs(n, "concatenated from an unknown list");
    const auto& elems = lists_.at(n.input(0).value);
    auto params_it = list_params_.find(n.input(0).value);
    const std::vector<Arg> params = params_it == list_params_.end() ? std::vector<Arg>{} : params_it->second;
    Node* list = g_.producer(n.input(0).value);
    size_t tensors = 0;
    for (const Arg& a : list->inputs()) tensors += a.kind == Arg::Kind::Param || (a.is_value() && g_.value(a.value).is_tensor());
    if (elems.size() + params.size() != tensors || elems.empty()) {
      for (ValueId e : elems) freeze_value(e, "concatenated with a tensor of unknown channels at " + n.describe());
      return;
    }
    int64_t r = static_cast<int64_t>(rank(n.output()));
    int64_t dim = n.inputs().size() > 1 && n.input(1).kind == Arg::Kind::Constant ? n.input(1).constant.toInt() : 0;
    if (dim < 0) dim += r;
    Layout out{layouts_.at(elems[0]).dim, {}};
    for (ValueId e : elems) {
      const Layout& l = layouts_.at(e);
      if (l.dim != out.dim) {
        for (ValueId x : elems) freeze_value(x, "concatenated with channels in another dimension at " + n.describe());
        return;
      }
      if (dim == l.dim) {
        out.segments.insert(out.segments.end(), l.segments.begin(), l.segments.end());
      } else if (e != elems[0] && !unify(layouts_.at(elems[0]), l, n)) {
        return;
      }
    }
    if (dim != out.dim) out.segments = layouts_.at(elems[0]).segments;
    // A parameter concatenated along another dimension (a class token before
    // the patch tokens) shares the channels; along the channels it has none to give.
    for (const Arg& a : params) {
      const std::optional<FreeParam> f = free_param(a, static_cast<size_t>(r));
      if (dim == out.dim || !f || !attach(*f, out, n)) {
        for (ValueId x : elems) freeze_value(x, "concatenated with a parameter that cannot shrink with the channels at " + n.describe());
        return;
      }
    }
    layouts_[n.output()] = out;
  }

  void visit_leaf(const Node& n) {
    const Layout* in = layout(n.input(0));
    const ValueId out = n.output();
    switch (n.leaf) {
      case LeafKind::Conv1d:
      case LeafKind::Conv2d: {
        const auto& a = std::get<ConvAttrs>(n.attrs);
        if (a.groups > 1) return grouped_conv(n, a);
        if (in) {
          if (in->dim != 1) freeze_layout(*in, n.module + " reads channels from another dimension");
          else add_slices(*in, n, "weight", 1, ChannelSlice::Role::In);
        }
        Layout made = produce(n, a.out_channels, 1);
        add_slices(made, n, "weight", 0, ChannelSlice::Role::Out);
        add_slices(made, n, "bias", 0, ChannelSlice::Role::Out);
        layouts_[out] = made;
        return;
      }
      case LeafKind::Linear: {
        const auto& a = std::get<LinearAttrs>(n.attrs);
        int last = static_cast<int>(rank(out)) - 1;
        if (in) {
          if (in->dim != last) freeze_layout(*in, n.module + " reads features from another dimension");
          else add_slices(*in, n, "weight", 1, ChannelSlice::Role::In);
        }
        Layout made = produce(n, a.out_features, last);
        add_slices(made, n, "weight", 0, ChannelSlice::Role::Out);
        add_slices(made, n, "bias", 0, ChannelSlice::Role::Out);
        layouts_[out] = made;
        return;
      }
      case LeafKind::BatchNorm1d:
      case LeafKind::BatchNorm2d:
        if (!in) return;
        if (in->dim != 1) return freeze_layout(*in, n.module + " normalises another dimension");
        if (n.params.empty()) return freeze_layout(*in, n.module + " has no tensors to shrink with its channels");
        for (const char* role : {"weight", "bias", "running_mean", "running_var"})
          add_slices(*in, n, role, 0, ChannelSlice::Role::Through);
        if (calls_[n.module] > 1) freeze_layout(*in, n.module + " is called more than once");
        layouts_[out] = *in;
        return;
      case LeafKind::LayerNorm: {
        if (!in) return;
        const auto& a = std::get<LayerNormAttrs>(n.attrs);
        if (a.normalized_shape.size() != 1 || in->dim != static_cast<int>(rank(out)) - 1 || !a.affine)
          return freeze_layout(*in, n.module + " normalises more than the channel dimension");
        add_slices(*in, n, "weight", 0, ChannelSlice::Role::Through);
        add_slices(*in, n, "bias", 0, ChannelSlice::Role::Through);
        if (calls_[n.module] > 1) freeze_layout(*in, n.module + " is called more than once");
        layouts_[out] = *in;
        return;
      }
      case LeafKind::Dropout:
        if (in) layouts_[out] = *in;
        return;
      case LeafKind::Embedding: {
        Layout made = produce(n, std::get<EmbeddingAttrs>(n.attrs).embedding_dim, static_cast<int>(rank(out)) - 1);
        add_slices(made, n, "weight", 1, ChannelSlice::Role::Out);
        layouts_[out] = made;
        return;
      }
      case LeafKind::MultiheadAttention: {
        // Whole heads are a group of their own: head h is rows
        // [h*d, (h+1)*d) of each of the q, k and v blocks of in_proj and
        // the same columns of out_proj. The features it reads are in_proj's
        // columns (q, k and v read the same input); those it writes, out_proj's
        // rows: a transformer's residual stream, once the add couples them.
        const auto& a = std::get<AttentionAttrs>(n.attrs);
        const int64_t d = a.head_size(), inner = a.inner_dim();
        int heads = new_space(a.num_heads);
        spaces_[heads].producers.push_back(&n);
        spaces_[heads].name = n.module + ":heads";
        if (calls_[n.module] > 1) freeze(heads, n.module + " is called more than once");
        for (const char* role : {"in_proj_weight", "in_proj_bias"}) {
          auto it = n.params.find(role);
          if (it == n.params.end()) continue;
          for (int64_t block = 0; block < 3; ++block)
            spaces_[heads].slices.push_back(ChannelSlice{it->second, 0, block * inner, d, ChannelSlice::Role::Out, &n});
        }
        spaces_[heads].slices.push_back(
            ChannelSlice{n.params.at("out_proj.weight"), 1, 0, d, ChannelSlice::Role::In, &n});
        const int last = static_cast<int>(rank(out)) - 1;
        if (in) {
          if (in->dim != last) freeze_layout(*in, "attention " + n.module + " reads features from another dimension");
          else add_slices(*in, n, "in_proj_weight", 1, ChannelSlice::Role::In);
        }
        Layout made = produce(n, a.embed_dim, last);
        add_slices(made, n, "out_proj.weight", 0, ChannelSlice::Role::Out);
        add_slices(made, n, "out_proj.bias", 0, ChannelSlice::Role::Out);
        layouts_[out] = made;
        return;
      }
    }
  }

  // A convolution with G > 1 groups: output channels [k*co, (k+1)*co) read
  // only input channels [k*ci, (k+1)*ci). Its structure stays: G groups.
  //  - ci = 1 (depthwise, with a channel multiplier co >= 1): input channel
  //    k makes output channels [k*co, (k+1)*co), so the conv passes its
  //    input's channels on, each spread over co outputs; removing a channel
  //    removes its co filters (a depthwise conv shrinks its groups).
  //  - ci > 1 (ResNeXt, RegNet): every group shrinks alike. The input is
  //    cut into its G blocks of ci, coupled position by position (channel j
  //    of every block is one channel of the group), which is what the
  //    weight's dimension 1 indexes; the output is one new group of co
  //    channels repeated in each of the G blocks. Both keep G groups.
  void grouped_conv(const Node& n, const ConvAttrs& a) {
    const ValueId out = n.output();
    const int64_t groups = a.groups, ci = a.in_channels / a.groups, co = a.out_channels / a.groups;
    const Layout* in = layout(n.input(0));
    if (in && in->dim != 1) {
      freeze_layout(*in, n.module + " reads channels from another dimension");
      in = nullptr;
    }
    if (ci == 1) {
      if (!in) {
        // Channels of unknown origin: the conv makes its own, which may not shrink.
        Layout made = produce(n, a.out_channels, 1);
        freeze_layout(made, "grouped convolution " + n.module + " reads channels it cannot follow");
        layouts_[out] = made;
        return;
      }
      Layout through = *in;
      for (Segment& seg : through.segments) seg.stride *= co;
      add_slices(through, n, "weight", 0, ChannelSlice::Role::Through);
      add_slices(through, n, "bias", 0, ChannelSlice::Role::Through);
      if (calls_[n.module] > 1) freeze_layout(*in, n.module + " is called more than once");
      layouts_[out] = through;
      return;
    }
    // The output: one group of co channels, in each of the G blocks.
    int made = new_space(co);
    spaces_[made].producers.push_back(&n);
    if (calls_[n.module] > 1) freeze(made, n.module + " is called more than once");
    Layout made_layout{1, {}};
    for (int64_t k = 0; k < groups; ++k) {
      made_layout.segments.push_back(Segment{made, co, 1});
      for (const char* role : {"weight", "bias"}) {
        auto it = n.params.find(role);
        if (it != n.params.end())
          spaces_[made].slices.push_back(ChannelSlice{it->second, 0, k * co, 1, ChannelSlice::Role::Out, &n});
      }
    }
    layouts_[out] = made_layout;
    // The input: its G blocks coupled position by position; the weight's dim 1 indexes a block.
    if (!in) return;
    if (std::optional<Layout> block = couple_blocks(n.input(0).value, groups, n))
      add_slices(*block, n, "weight", 1, ChannelSlice::Role::In);
  }

  GroupAnalysis collect() {
    GroupAnalysis result;
    std::vector<std::pair<int, Group>> found;  // (space root, its group)
    for (size_t s = 0; s < spaces_.size(); ++s) {
      int r = root(static_cast<int>(s));
      if (static_cast<int>(s) != r || spaces_[r].producers.empty()) continue;
      Space& sp = spaces_[r];
      std::sort(sp.producers.begin(), sp.producers.end(),
                [&](const Node* a, const Node* b) { return g_.is_before(a, b); });
      // Pieces of one space coupled again (a grouped convolution's blocks) repeat their producers.
      sp.producers.erase(std::unique(sp.producers.begin(), sp.producers.end()), sp.producers.end());
      Group grp;
      grp.name = sp.name.empty() ? sp.producers.front()->module : sp.name;
      grp.width = sp.length;
      grp.slices = sp.slices;
      grp.producers = sp.producers;
      grp.frozen = sp.frozen;
      grp.frozen_reason = sp.reason;
      std::vector<const Node*> leaves;
      for (const auto& sl : grp.slices)
        if (std::find(leaves.begin(), leaves.end(), sl.leaf) == leaves.end()) leaves.push_back(sl.leaf);
      std::sort(leaves.begin(), leaves.end(), [&](const Node* a, const Node* b) { return g_.is_before(a, b); });
      for (const Node* l : leaves) {
        if (l->is_leaf()) {
          grp.members.push_back(l->module);
          continue;
        }
        for (const auto& sl : grp.slices)  // an op reading a free parameter: the parameter's name
          if (sl.leaf == l && std::find(grp.members.begin(), grp.members.end(), sl.param) == grp.members.end())
            grp.members.push_back(sl.param);
      }
      found.emplace_back(r, std::move(grp));
    }
    std::stable_sort(found.begin(), found.end(), [&](const auto& a, const auto& b) {
      return g_.is_before(a.second.producers.front(), b.second.producers.front());
    });
    std::vector<int> roots;
    for (auto& [r, grp] : found) {
      roots.push_back(r);
      result.groups.push_back(std::move(grp));
    }
    // Names are how --ratios addresses groups: pieces of one layer's channels
    // coupled with different groups (cut by a grouped convolution) get ":2", ":3", ...
    std::unordered_map<std::string, int> seen;
    for (Group& grp : result.groups)
      if (int k = ++seen[grp.name]; k > 1) grp.name += ":" + std::to_string(k);
    // The splits' parts, by group index.
    std::unordered_map<int, int> group_of;  // space root -> index in result.groups
    for (size_t i = 0; i < result.groups.size(); ++i) group_of[roots[i]] = static_cast<int>(i);
    for (SplitSite& site : splits_) {
      SplitSizes out{site.node, 1, site.single, {}};
      for (Layout& part : site.parts) {
        rewrite(part);
        std::vector<SplitSizes::Piece> pieces;
        for (const Segment& seg : part.segments) {
          auto it = group_of.find(root(seg.space));
          pieces.push_back({it == group_of.end() ? -1 : it->second, seg.length, seg.stride});
        }
        out.parts.push_back(pieces);
      }
      result.splits.push_back(std::move(out));
    }
    return result;
  }

  const Graph& g_;
  std::vector<Space> spaces_;
  std::unordered_map<ValueId, Layout> layouts_;
  std::unordered_map<ValueId, std::vector<ValueId>> lists_;
  std::unordered_map<ValueId, std::vector<Arg>> list_params_;  // free parameters in a list
  std::unordered_map<ValueId, std::vector<Layout>> parts_;       // a chunk's / split's parts, by list
  struct SplitSite {
    const Node* node;
    bool single;
    std::vector<Layout> parts;
  };
  std::vector<SplitSite> splits_;  // splits whose sizes removal rewrites
  std::unordered_map<ValueId, FreeParam> free_params_;
  std::unordered_map<std::string, int> calls_;
  std::unordered_map<std::string, int> param_uses_;  // by op nodes
};

}  // namespace

GroupAnalysis analyze_groups(const Graph& graph) { return Analyzer(graph).run(); }

std::string describe_groups(const GroupAnalysis& analysis) {
  std::ostringstream os;
  size_t prunable = 0;
  for (const Group& grp : analysis.groups) {
    prunable += !grp.frozen;
    os << grp.name << "  " << grp.width << " ch";
    if (grp.frozen) os << "  [frozen: " << grp.frozen_reason << "]";
    os << "\n    ";
    for (size_t i = 0; i < grp.members.size(); ++i) os << (i ? ", " : "") << grp.members[i];
    os << "\n";
  }
  os << analysis.groups.size() << " groups, " << prunable << " prunable\n";
  return os.str();
}

}  // namespace compress::pruning
