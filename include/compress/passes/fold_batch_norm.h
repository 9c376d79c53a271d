#pragma once
// fold_batch_norm: batch norms folded into the convolution or linear layer
// that feeds them. Registered as "fold_batch_norm" (pass.h).
#include "compress/passes/pass.h"

namespace compress {

struct FoldBatchNormOptions {
  // Also fold linear -> batch_norm1d (when the linear output is (N, C), so
  // that the batch norm's channels are the linear layer's features).
  bool linear = true;

  nlohmann::json to_json() const { return {{"linear", linear}}; }
  static FoldBatchNormOptions from_json(const nlohmann::json& j);
};

// w' = w * gamma / sigma, b' = beta + (b - mu) * gamma / sigma with
// sigma = sqrt(running_var + eps), computed in double. Eval-mode outputs stay
// equal within float rounding; the folded model has no batch statistics to
// train. Left alone, each with its reason in the result: a batch norm without
// running statistics, one fed by anything but a conv/linear leaf, by a layer
// whose output is also read elsewhere, by a module called twice, or (linear)
// on a rank other than 2 or of unknown rank (no example inputs).
PassResult fold_batch_norm(Graph& graph, const FoldBatchNormOptions& options = {});

}  // namespace compress
