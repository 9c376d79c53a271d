#pragma once
// Tiny models written as TorchScript source, for the IR tests.
#include <map>
#include <string>

#include <torch/script.h>

namespace compress::testing {

// A module of class `type_name` with the given tensors and forward source.
// torch.nn class names (`__torch__.torch.nn.modules.linear.Linear`) make
// leaves the importer recognises.
inline torch::jit::Module make_module(const std::string& type_name, const std::map<std::string, at::Tensor>& params,
                                      const std::string& source, const std::map<std::string, at::Tensor>& buffers = {}) {
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module m(c10::QualifiedName(type_name), cu, true);
  m.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& kv : params) m.register_parameter(kv.first, kv.second, false);
  for (const auto& kv : buffers) m.register_parameter(kv.first, kv.second, true);
  if (!source.empty()) m.define(source);
  return m;
}

}  // namespace compress::testing
