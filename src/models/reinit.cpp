#include "compress/models/reinit.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "compress/error.h"
#include "compress/ir/leaf.h"

namespace compress::models {

using torch::jit::Module;

void reinitialize(Module& module, uint64_t seed) {
  // The leaves with a rule, and a check that they hold every parameter,
  // before any value changes.
  struct Leaf {
    Module module;
    LeafKind kind;
    int64_t groups;  // convolutions
  };
  std::vector<Leaf> leaves;
  std::set<std::string> covered;
  for (const auto& sub : module.named_modules()) {
    std::optional<RecognizedLeaf> leaf = recognize_leaf(sub.value);
    if (!leaf) continue;
    switch (leaf->kind) {
      case LeafKind::Conv1d: case LeafKind::Conv2d: case LeafKind::Linear:
      case LeafKind::BatchNorm1d: case LeafKind::BatchNorm2d: case LeafKind::LayerNorm:
        break;
      default:
        continue;
    }
    const auto* conv = std::get_if<ConvAttrs>(&leaf->attrs);
    leaves.push_back({sub.value, leaf->kind, conv ? conv->groups : 1});
    for (const auto& p : sub.value.named_parameters(/*recurse=*/false)) {
      covered.insert(sub.name.empty() ? p.name : sub.name + "." + p.name);
    }
  }
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (!covered.count(p.name)) {
      bad_input("cannot re-initialise parameter '" + p.name +
                "': only convolution, linear and normalisation layers have a fresh initialisation");
    }
  }

  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  for (const Leaf& leaf : leaves) {
    const LeafKind kind = leaf.kind;
    auto tensor = [&](const char* name) -> std::optional<at::Tensor> {
      if (!leaf.module.hasattr(name) || !leaf.module.attr(name).isTensor()) return std::nullopt;
      return leaf.module.attr(name).toTensor();
    };
    if (kind == LeafKind::Conv1d || kind == LeafKind::Conv2d) {
      // Kaiming-normal over fan_out, as Builder::conv; zero bias.
      at::Tensor w = *tensor("weight");
      const double fan_out = double(w.size(0) * w[0][0].numel()) / double(leaf.groups);
      w.normal_(0.0, std::sqrt(2.0 / fan_out), gen);
      if (auto b = tensor("bias")) b->zero_();
    } else if (kind == LeafKind::Linear) {
      // torch.nn.Linear's default, as Builder::linear: U(-1/sqrt(in), 1/sqrt(in)).
      at::Tensor w = *tensor("weight");
      const double bound = 1.0 / std::sqrt(double(w.size(1)));
      w.uniform_(-bound, bound, gen);
      if (auto b = tensor("bias")) b->uniform_(-bound, bound, gen);
    } else {
      if (auto w = tensor("weight")) w->fill_(1);
      if (auto b = tensor("bias")) b->zero_();
      if (auto m = tensor("running_mean")) m->zero_();
      if (auto v = tensor("running_var")) v->fill_(1);
      if (auto n = tensor("num_batches_tracked")) n->zero_();
    }
  }
}

}  // namespace compress::models
