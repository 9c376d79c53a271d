#pragma once
// Subgraph patterns for fusion passes: conv -> batch_norm -> relu,
// linear -> relu, add -> relu, conv -> add(residual) -> relu, ...
//
//   Pattern p;
//   auto conv = p.node({"nn.Conv2d"});
//   auto bn = p.node({"nn.BatchNorm2d"}, {conv});
//   auto act = p.node({"aten::relu", "aten::hardtanh"}, {bn});
//   for (const Match& m : find_matches(g, p)) fuse(m[conv], m[bn], m[act]);
//
// A pattern node lists the ops it accepts (Node::op_name(): "nn.Conv2d",
// "aten::relu") and where its first value operands come from (other
// pattern nodes, or `any()` wildcards). The last node added is the root.
// Matches are found from every candidate root backwards; every matched node
// but the root must have no users outside the match (fusing it away must
// not change what the rest of the graph reads), and no node is in two
// matches (earliest root first).
#include <functional>
#include <string>
#include <vector>

#include "compress/ir/graph.h"

namespace compress {

class Pattern {
 public:
  using Id = int;
  using Test = std::function<bool(const Graph&, const Node&)>;

  // A node whose op_name() is one of `ops` (empty: any op), whose first
  // value operands come from `inputs` in order.
  Id node(std::vector<std::string> ops, std::vector<Id> inputs = {});
  // Any value: a graph input or the output of a node outside the match.
  Id any();
  // The last node's two value operands may come in either order (add, mul).
  Pattern& commutative();
  // An extra condition on the last node.
  Pattern& where(Test test);

  struct Element {
    bool wildcard = false;
    std::vector<std::string> ops;
    std::vector<Id> inputs;
    bool commutative = false;
    Test test;
  };
  const std::vector<Element>& elements() const { return elements_; }
  Id root() const { return static_cast<Id>(elements_.size()) - 1; }

 private:
  std::vector<Element> elements_;
};

struct Match {
  std::vector<Node*> nodes;     // by pattern id; nullptr for wildcards
  std::vector<ValueId> values;  // by pattern id: the matched node's output, or the wildcard's value
  Node* operator[](Pattern::Id id) const { return nodes.at(static_cast<size_t>(id)); }
  Node* root() const { return nodes.back(); }
};

std::vector<Match> find_matches(const Graph& g, const Pattern& pattern);

// Patterns the fusion passes use. Activations: relu, relu6 (traced as
// hardtanh), clamp; convolutions: Conv1d/Conv2d; batch norms: 1d/2d.
namespace patterns {
extern const std::vector<std::string> kConv;
extern const std::vector<std::string> kBatchNorm;
extern const std::vector<std::string> kActivation;
Pattern conv_bn();
Pattern conv_bn_act();
Pattern linear_act();
Pattern add_act();
// conv -> batch_norm -> add(other operand anything) -> activation.
Pattern conv_bn_add_act();
}  // namespace patterns

}  // namespace compress
