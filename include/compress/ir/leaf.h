#pragma once
// What the toolkit knows about each leaf kind, one registry entry per kind,
// each written in its own file (src/ir/leaves/<kind>.cpp): how to recognise
// the module in a TorchScript model, the TorchScript source of its forward,
// its MAC count, its output shape, the checks of its attributes against its
// tensors, and which tensor dimensions are its channels (what pruning needs).
// Adding a kind: its attributes struct and enum value in graph.h, its entry
// in one new file.
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/script.h>

#include "compress/ir/graph.h"

namespace compress {

// One dimension of one of a leaf's parameters: ("weight", 0).
struct ParamDim {
  std::string role;
  int dim = 0;
};

// Where a leaf's channels are.
struct ChannelRule {
  // Parameter dims indexed by the output channels (shrink when outputs go)...
  std::vector<ParamDim> out;
  // ...and by the input channels (shrink when the producer's outputs go).
  std::vector<ParamDim> in;
  // Output channel i is input channel i (batch/layer norm, dropout): the
  // leaf passes its input's channels through instead of making new ones.
  bool passthrough = false;
  // Dimension of the input/output activations that carries the channels:
  // 1 for NCHW / NCL, -1 for the features of linear, layer norm, attention.
  int activation_dim = 1;
  // Whether the output channels come in groups coupled to the input
  // channels (grouped and depthwise convolution: see ConvAttrs::groups).
  bool grouped = false;
};

// A leaf recognised in a TorchScript module.
struct RecognizedLeaf {
  LeafKind kind;
  LeafAttrs attrs;
  // role ("weight", "out_proj.bias") -> path of the tensor relative to the module.
  std::vector<std::string> roles;
};

struct LeafInfo {
  LeafKind kind;
  const char* name;  // "Conv2d"
  // Last components of the torch.nn class names this kind may come from.
  std::vector<std::string> class_names;
  // The leaf, if the module's forward has exactly the form `source` writes
  // back; nothing otherwise (the module is then inlined).
  std::function<std::optional<RecognizedLeaf>(const torch::jit::Module&)> recognize;
  // TorchScript source of the leaf module's `forward` (and helpers).
  std::function<std::string(const Node&)> source;
  // Attributes besides parameters the exported module carries, so that a
  // later import recovers what its traced body cannot show. May be empty.
  std::function<std::vector<std::pair<std::string, c10::IValue>>(const Node&)> attributes;
  // Output shape for an input shape; Error(BadInput) when it does not fit.
  std::function<Shape(const Node&, const Shape& in)> output_shape;
  // Multiply-accumulates for one call with these input and output shapes.
  std::function<int64_t(const Node&, const Shape& in, const Shape& out)> macs;
  // Attributes against parameter shapes and roles; Error(Failure) naming the
  // disagreement.
  std::function<void(const Graph&, const Node&)> validate;
  ChannelRule channels;
};

// The entry of a kind (every kind has one).
const LeafInfo& leaf_info(LeafKind kind);
// Every entry, in LeafKind order.
std::vector<const LeafInfo*> leaf_infos();

// Called once per kind by its file's static registrar.
void register_leaf(LeafInfo info);

// The leaf a module is, if torch.nn's own class (or this toolkit's export of
// it) with a forward the export can reproduce exactly.
std::optional<RecognizedLeaf> recognize_leaf(const torch::jit::Module& module);

// The forward an nn.MultiheadAttention (self-attention, no masks) with these
// attributes gets from this toolkit: self-attention exactly as torch 1.13's
// nn.functional.multi_head_attention_forward computes it for one input, no
// masks and need_weights=False; the fused kernel in eval mode when `fused`
// (same numerics as the original that used it), the decomposition otherwise
// and always in training (the fused kernel has no dropout or backward). What
// the export writes, and what the zoo's ViT uses so that it imports as this leaf.
std::string multihead_attention_source(const AttentionAttrs& attrs);

}  // namespace compress
