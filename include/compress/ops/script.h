#pragma once
// Module::define() resolves only `torch` by default, so source that calls
// custom ops cannot be compiled from C++. This resolver adds `ops`, so
// `ops.compress.linear_int8(...)` (the spelling TorchScript itself uses for
// custom ops in saved code) compiles, `compress.*` as a short form, and the
// special forms `annotate` / `unchecked_cast` that saved code uses; anything
// else falls back to the native resolver (`torch`). The IR exporter compiles
// everything it generates with it.
#include <torch/csrc/jit/frontend/resolver.h>

namespace compress::ops {

torch::jit::ResolverPtr script_resolver();

}  // namespace compress::ops
