#pragma once
// compress::Graph -> TorchScript module.
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/ir/graph.h"

namespace compress {

struct ExportOptions {
  // Also define `record_values(inputs) -> List[Tensor]`, returning every
  // tensor the graph computes (graph order).
  bool record_values = false;
  // Intermediate values (by name, e.g. "layer3.1:add") that `forward` also
  // returns: forward then returns a tuple (outputs..., taps...). For
  // calibration statistics, distillation features, feature losses. An
  // unknown name is Error(BadInput) with the closest name.
  std::vector<std::string> taps;
};

// Generates TorchScript source for the graph and compiles it with
// Module::define (a resolver makes `compress.*` and `ops.*` callable).
// Parameters and buffers are copied and registered under their state_dict
// names in a module hierarchy that mirrors the original (so training the
// module never changes the graph); leaf modules get their own `forward`. The module honours train()/eval() for batch norm, dropout and
// attention dropout. It starts in eval mode.
torch::jit::Module export_module(const Graph& graph, const ExportOptions& options = {});

// The other way: copies the parameters and buffers of `module` (an
// export_module of `graph`, trained since) back into `graph` by state_dict
// name. Names the graph does not have (e.g. adapters registered on the
// training module only) are skipped.
void update_from_module(Graph& graph, const torch::jit::Module& module);

// The TorchScript source that export_module compiles for the root module
// (for debugging and docs).
std::string export_source(const Graph& graph, const ExportOptions& options = {});

}  // namespace compress
