#include "compress/ir/match.h"

#include <algorithm>
#include <unordered_set>

#include "compress/error.h"

namespace compress {

Pattern::Id Pattern::node(std::vector<std::string> ops, std::vector<Id> inputs) {
  for (Id i : inputs)
    if (i < 0 || i >= static_cast<Id>(elements_.size())) failure("pattern: an input refers to a later element");
  Element e;
  e.ops = std::move(ops);
  e.inputs = std::move(inputs);
  elements_.push_back(std::move(e));
  return root();
}

Pattern::Id Pattern::any() {
  Element e;
  e.wildcard = true;
  elements_.push_back(std::move(e));
  return root();
}

Pattern& Pattern::commutative() {
  if (elements_.empty() || elements_.back().inputs.size() != 2) failure("pattern: commutative() needs a node with two inputs");
  elements_.back().commutative = true;
  return *this;
}

Pattern& Pattern::where(Test test) {
  if (elements_.empty()) failure("pattern: where() before any node");
  elements_.back().test = std::move(test);
  return *this;
}

namespace {

class Matcher {
 public:
  Matcher(const Graph& g, const Pattern& p) : g_(g), p_(p) {}

  // Tries every choice of operand order for the commutative nodes (a
  // pattern has few), so that the inner-use rule can pick the order that
  // works: add(conv_a, conv_b) matches conv -> add with either conv.
  bool match_root(Node* root, Match& m) {
    if (root->outputs().empty()) return false;
    int commutative = 0;
    for (const auto& e : p_.elements()) commutative += e.commutative;
    for (uint32_t mask = 0; mask < (1u << commutative); ++mask) {
      swap_mask_ = mask;
      m.nodes.assign(p_.elements().size(), nullptr);
      m.values.assign(p_.elements().size(), -1);
      if (match_node(p_.root(), root, m) && inner_uses_ok(root, m)) return true;
    }
    return false;
  }

  // Inner nodes may be read only inside the match.
  bool inner_uses_ok(Node* root, const Match& m) const {
    std::unordered_set<const Node*> inside;
    for (Node* n : m.nodes)
      if (n) inside.insert(n);
    for (Node* n : m.nodes) {
      if (!n || n == root) continue;
      for (ValueId v : n->outputs()) {
        if (g_.is_output(v)) return false;
        for (const Use& u : g_.uses(v))
          if (!inside.count(u.user)) return false;
      }
    }
    return true;
  }

 private:
  static std::vector<ValueId> value_operands(const Node& n) {
    std::vector<ValueId> out;
    for (const Arg& a : n.inputs())
      if (a.is_value()) out.push_back(a.value);
    return out;
  }

  bool match_node(Pattern::Id id, Node* n, Match& m) {
    const auto& e = p_.elements()[id];
    if (m.nodes[id]) return m.nodes[id] == n;
    if (!e.ops.empty() && std::find(e.ops.begin(), e.ops.end(), n->op_name()) == e.ops.end()) return false;
    if (e.test && !e.test(g_, *n)) return false;
    auto operands = value_operands(*n);
    if (operands.size() < e.inputs.size()) return false;
    m.nodes[id] = n;
    m.values[id] = n->output(0);
    if (e.commutative && (swap_mask_ >> commutative_index(id)) & 1u) std::swap(operands[0], operands[1]);
    for (size_t k = 0; k < e.inputs.size(); ++k)
      if (!match_value(e.inputs[k], operands[k], m)) return false;
    return true;
  }

  bool match_value(Pattern::Id id, ValueId v, Match& m) {
    const auto& e = p_.elements()[id];
    if (e.wildcard) {
      if (m.values[id] >= 0) return m.values[id] == v;
      m.values[id] = v;
      return true;
    }
    Node* producer = g_.producer(v);
    if (!producer || g_.value(v).offset != 0) return false;
    return match_node(id, producer, m);
  }

  // Which bit of the swap mask a commutative element owns.
  int commutative_index(Pattern::Id id) const {
    int k = 0;
    for (Pattern::Id i = 0; i < id; ++i) k += p_.elements()[static_cast<size_t>(i)].commutative;
    return k;
  }

  const Graph& g_;
  const Pattern& p_;
  uint32_t swap_mask_ = 0;
};

}  // namespace

std::vector<Match> find_matches(const Graph& g, const Pattern& pattern) {
  if (pattern.elements().empty() || pattern.elements().back().wildcard)
    failure("pattern: the last element (the root) must be a node");
  Matcher matcher(g, pattern);
  std::vector<Match> out;
  std::unordered_set<const Node*> claimed;
  for (Node& n : g.nodes()) {
    Match m;
    if (!matcher.match_root(&n, m)) continue;
    bool overlaps = std::any_of(m.nodes.begin(), m.nodes.end(), [&](Node* x) { return x && claimed.count(x); });
    if (overlaps) continue;
    for (Node* x : m.nodes)
      if (x) claimed.insert(x);
    out.push_back(std::move(m));
  }
  return out;
}

namespace patterns {

const std::vector<std::string> kConv = {"nn.Conv1d", "nn.Conv2d"};
const std::vector<std::string> kBatchNorm = {"nn.BatchNorm1d", "nn.BatchNorm2d"};
const std::vector<std::string> kActivation = {"aten::relu", "aten::relu6", "aten::hardtanh", "aten::clamp"};

Pattern conv_bn() {
  Pattern p;
  auto conv = p.node(kConv);
  p.node(kBatchNorm, {conv});
  return p;
}

Pattern conv_bn_act() {
  Pattern p;
  auto conv = p.node(kConv);
  auto bn = p.node(kBatchNorm, {conv});
  p.node(kActivation, {bn});
  return p;
}

Pattern linear_act() {
  Pattern p;
  auto linear = p.node({"nn.Linear"});
  p.node(kActivation, {linear});
  return p;
}

Pattern add_act() {
  Pattern p;
  auto a = p.any();
  auto b = p.any();
  auto add = p.node({"aten::add"}, {a, b});
  p.node(kActivation, {add});
  return p;
}

Pattern conv_bn_add_act() {
  Pattern p;
  auto conv = p.node(kConv);
  auto bn = p.node(kBatchNorm, {conv});
  auto other = p.any();
  auto add = p.node({"aten::add"}, {bn, other});
  p.commutative();
  p.node(kActivation, {add});
  return p;
}

}  // namespace patterns
}  // namespace compress
