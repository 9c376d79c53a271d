#include "compress/ops/script.h"

#include <torch/csrc/jit/frontend/sugared_value.h>

namespace compress::ops {
namespace {

// `ops.<ns>` -> the builtin module of namespace <ns>, whose attributes are its ops.
struct OpsNamespaces : torch::jit::SugaredValue {
  std::string kind() const override { return "ops"; }
  std::shared_ptr<torch::jit::SugaredValue> attr(const torch::jit::SourceRange&, torch::jit::GraphFunction&,
                                                 const std::string& field) override {
    return std::make_shared<torch::jit::BuiltinModule>(field);
  }
};

struct Resolver : torch::jit::NativeResolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction& m,
                                                         const torch::jit::SourceRange& loc) override {
    if (name == "ops") return std::make_shared<OpsNamespaces>();
    // `compress.linear_int8(...)`: this toolkit's ops by their short name.
    if (name == "compress") return std::make_shared<torch::jit::BuiltinModule>("compress");
    // Special forms that saved TorchScript code uses but Module::define's
    // global environment does not provide.
    if (name == "annotate") return torch::jit::SpecialFormValue::create(c10::prim::annotate);
    if (name == "unchecked_cast") return torch::jit::SpecialFormValue::create(c10::prim::unchecked_cast);
    return torch::jit::NativeResolver::resolveValue(name, m, loc);
  }
};

}  // namespace

torch::jit::ResolverPtr script_resolver() { return std::make_shared<Resolver>(); }

}  // namespace compress::ops
