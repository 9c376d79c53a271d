#include "compress/passes/strip_dropout.h"

namespace compress {
namespace {

bool is_dropout_op(const Node& n) {
  if (n.is_leaf()) return false;
  static const c10::Symbol ops[] = {c10::aten::dropout, c10::aten::feature_dropout, c10::aten::alpha_dropout,
                                    c10::aten::feature_alpha_dropout, c10::aten::dropout_,
                                    c10::aten::feature_dropout_, c10::aten::alpha_dropout_,
                                    c10::aten::feature_alpha_dropout_};
  return std::find(std::begin(ops), std::end(ops), n.op) != std::end(ops);
}

}  // namespace

PassResult strip_dropout(Graph& g, const StripDropoutOptions&) {
  PassResult result;
  result.pass = "strip_dropout";
  for (Node& n : g.nodes()) {
    if (!n.is_leaf(LeafKind::Dropout) && !is_dropout_op(n)) continue;
    result.changes.push_back(g.name_of(n.output()) + " removed");
    g.replace_all_uses(n.output(), n.input(0));
    g.erase(&n);
    ++result.changed;
  }
  return result;
}

namespace {
[[maybe_unused]] const bool registered = [] {
  PassInfo info;
  info.name = "strip_dropout";
  info.summary = "remove dropout (the identity in eval mode)";
  info.default_options = StripDropoutOptions{}.to_json();
  info.run = [](Graph& g, const nlohmann::json&) { return strip_dropout(g); };
  register_pass(std::move(info));
  return true;
}();
}  // namespace

}  // namespace compress
