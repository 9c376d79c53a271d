#pragma once
// The pool's allocation side (include/compress/ops/activation_pool.h says why).
#include <ATen/ATen.h>

#include "compress/ops/activation_pool.h"

namespace compress::ops::detail {

// at::empty(sizes, dtype) on the CPU, from the pool when large.
at::Tensor empty_activation(at::IntArrayRef sizes, at::ScalarType dtype);

}  // namespace compress::ops::detail
