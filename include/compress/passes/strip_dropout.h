#pragma once
// strip_dropout: removes dropout (nn.Dropout leaves and functional dropout
// ops), the identity in eval mode. Registered as "strip_dropout" (pass.h).
#include "compress/passes/pass.h"

namespace compress {

struct StripDropoutOptions {
  nlohmann::json to_json() const { return nlohmann::json::object(); }
};

PassResult strip_dropout(Graph& graph, const StripDropoutOptions& options = {});

}  // namespace compress
