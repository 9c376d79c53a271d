#pragma once
// Small graph-to-graph transforms used by `compress convert` and the pipelines.
#include "compress/ir/graph.h"

namespace compress {

// Folds each batch norm into the convolution or linear layer feeding it
// (w' = w * gamma / sigma, b' = beta + (b - mu) * gamma / sigma,
// sigma = sqrt(running_var + eps)), when that layer's output goes nowhere
// else and neither module is called twice. Eval-mode outputs stay equal to
// within float rounding. Returns the number of batch norms folded.
int fold_batch_norm(Graph& graph);

// Removes dropout (nn.Dropout leaves and functional dropout ops): they are
// the identity in eval mode. Returns the number removed.
int strip_dropout(Graph& graph);

}  // namespace compress
