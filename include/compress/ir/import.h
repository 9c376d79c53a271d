#pragma once
// TorchScript module -> compress::Graph.
#include <torch/script.h>

#include "compress/ir/graph.h"

namespace compress {

// Imports the module's `forward`. Calls of leaf modules the toolkit
// understands become typed leaf nodes; everything else is inlined and carried
// through as generic ops. Control flow that does not fold away (a prim::If or
// prim::Loop depending on the input) is refused with Error(BadInput) naming the
// node and its source line.
Graph import_module(const torch::jit::Module& module);

}  // namespace compress
