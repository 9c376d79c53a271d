#pragma once
// TorchScript class names of leaf modules. Internal to src/ir.
#include <string>

#include <torch/script.h>

#include "compress/ir/graph.h"

namespace compress::detail {

// A qualified TorchScript class name without the "___torch_mangle_N." parts.
std::string unmangled_type_name(const c10::ClassTypePtr& type);

// Attributes the export leaves on the root module so that a later import
// gets back what the generated code cannot show (see exporter.cpp).
inline constexpr const char* kValueNamesAttr = "_compress_value_names";  // Dict[str, str]: variable -> value name
inline constexpr const char* kScopesAttr = "_compress_scopes";           // Dict[str, str]: variable -> scope
inline constexpr const char* kInputShapesAttr = "_compress_input_shapes";  // List[List[int]]
inline constexpr const char* kInputDtypesAttr = "_compress_input_dtypes";  // List[int] (at::ScalarType)

// Class name for a leaf created without an original (by a pass).
std::string default_leaf_type_name(LeafKind kind);

}  // namespace compress::detail
