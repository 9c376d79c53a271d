#pragma once
// TorchScript class names of leaf modules. Internal to src/ir.
#include <string>

#include <torch/script.h>

#include "compress/ir/graph.h"

namespace compress::detail {

// A qualified TorchScript class name without the "___torch_mangle_N." parts.
std::string unmangled_type_name(const c10::ClassTypePtr& type);

// Class name for a leaf created without an original (by a pass).
std::string default_leaf_type_name(LeafKind kind);

}  // namespace compress::detail
