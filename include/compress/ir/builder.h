#pragma once
// Creating op nodes by operator name, checked against the operator registry.
//
//   auto at = g.inserting_after(conv);
//   ValueId y = add_op(g, "aten::mul", {Arg::of_value(conv->output()), Arg::of_constant(1.0)});
//   g.replace_uses_if(conv->output(), Arg::of_value(y), [&](const Node& n) { return &n != g.producer(y); });
//
// The schema comes from the registry LibTorch and this toolkit's ops library
// fill (`aten::*`, `prim::*`, `compress::*`): "aten::add" picks the overload
// whose arguments accept the operands, "aten::add.Tensor" names one. Operands
// are checked against it (count, and the type of each value, constant,
// parameter) and completed with the schema's defaults, so a node made here
// looks like one the importer made.
#include <memory>
#include <string>
#include <vector>

#include "compress/ir/graph.h"

namespace compress {

struct OpOptions {
  // Module path the node belongs to (for its name and reports). Empty: the
  // scope of the node just before the insertion point.
  std::optional<std::string> scope;
  // Name of its (first) output; empty: "<scope>:<op>", made unique.
  std::string name;
};

// The schema of `op` that accepts `args` (see above). Error(Failure) naming
// the operator and why no overload fits.
std::shared_ptr<c10::FunctionSchema> resolve_schema(const Graph& g, const std::string& op,
                                                    const std::vector<Arg>& args);

// Creates the op node at the graph's insertion point, one output per schema
// return. Returns the node.
Node* create_op(Graph& g, const std::string& op, std::vector<Arg> args, const OpOptions& options = {});

// create_op for an op with one result: returns that result.
ValueId add_op(Graph& g, const std::string& op, std::vector<Arg> args, const OpOptions& options = {});

}  // namespace compress
