#pragma once
// Leaf modules: recognising them in a TorchScript module (import) and writing
// their `forward` back as TorchScript source (export). Internal to src/ir.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/ir/graph.h"

namespace compress::detail {

// A qualified TorchScript class name without the "___torch_mangle_N." parts.
std::string unmangled_type_name(const c10::ClassTypePtr& type);

struct RecognizedLeaf {
  LeafKind kind;
  LeafAttrs attrs;
  // role ("weight", "out_proj.bias") -> path of the tensor relative to the module.
  std::vector<std::string> roles;
};

// Recognises a leaf module whose `forward(self, x)` the export can reproduce
// exactly. Returns nothing for any other module (it is then inlined).
std::optional<RecognizedLeaf> recognize_leaf(const torch::jit::Module& module);

// Class name for a leaf created without an original (by a pass).
std::string default_leaf_type_name(LeafKind kind);

// TorchScript source of the leaf module's methods (`forward` and helpers).
std::string leaf_module_source(const Node& leaf);

// Attributes (besides parameters) the leaf module carries so that a later
// import recovers hyper-parameters the traced body cannot show.
std::vector<std::pair<std::string, c10::IValue>> leaf_module_attributes(const Node& leaf);

// A double as a TorchScript literal that reads back to the same bits.
std::string float_literal(double v);

}  // namespace compress::detail
