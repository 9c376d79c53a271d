#pragma once
// Fresh weights for an existing model: "the same architecture trained from
// scratch" (a pruned model's shapes with new weights, `compress train --init
// M --reinit`).
#include <cstdint>

#include <torch/script.h>

namespace compress::models {

// Gives every parameter of `module` fresh values drawn from `seed`, in place,
// with the zoo's rule for its leaf kind (docs/training.md): convolutions
// Kaiming-normal (fan out, ReLU gain) with zero bias, linear layers
// torch.nn's uniform default, batch/layer norms scale 1 and shift 0 with
// reset running statistics. Architecture-specific touches of build() such as
// resnet's zero-initialised last BN scale are not reproduced. A parameter
// outside those leaves (attention, embeddings, recurrent cells, free
// tensors) is Error(BadInput) naming it, raised before any value changes.
void reinitialize(torch::jit::Module& module, uint64_t seed);

}  // namespace compress::models
