#pragma once
// Dependency groups for structured pruning: the sets of channels that must
// shrink together, found by following every channel from the layer that
// makes it (a convolution, linear layer or embedding) through everything
// that passes it on (batch/layer norm, activations, pooling, residual adds,
// squeeze-excitation multiplies, concatenation, flatten, transpose) to every
// layer that reads it. A group is removed channel by channel in all its
// places at once. A transformer's residual stream is one group: the features
// attention and the MLP read and write, coupled through every residual add,
// with the layer norms and the positional embedding / class token that
// are added to or concatenated with it.
//
// Where blocks of channels must stay equal in size — a grouped convolution's
// groups (ResNeXt, RegNet), torch.chunk's parts, a channel shuffle's groups
// (ShuffleNet) — the blocks are coupled position by position, so each
// shrinks alike. Where that cuts a layer's channels finer than the layer
// made them, its channels are cut into pieces (a squeeze-excitation gate
// made whole for a grouped output); where channels spread over more
// positions meet fewer, the finer ones go a few at a time.
//
// What the analysis cannot follow it never guesses: an op whose channel rule
// is unknown (a view across channels, a custom op), a value the model
// returns, a module called twice — each freezes the groups it touches, with
// the reason. docs/pruning.md.
#include <string>
#include <vector>

#include "compress/ir/graph.h"

namespace compress::pruning {

// One place a group's channels appear: dimension `dim` of parameter `param`
// (a state_dict name). Channel c of the group occupies indices
// [offset + c * stride, offset + (c + 1) * stride) of that dimension (stride
// > 1 where a flatten spread each channel over its spatial positions).
struct ChannelSlice {
  enum class Role { Out, In, Through };
  std::string param;
  int dim = 0;
  int64_t offset = 0;
  int64_t stride = 1;
  Role role = Role::Out;
  // The leaf that owns the parameter, or, for a free parameter the model's
  // code reads itself (a positional embedding, a class token: Role::Through),
  // the op that couples it with the group.
  const Node* leaf = nullptr;
};

struct Group {
  std::string name;    // the first producing layer's module path ("layer1.0.conv1"); ":2", ":3"... for
                       // later pieces of a layer whose channels were cut into several groups
  int64_t width = 0;   // channels
  std::vector<ChannelSlice> slices;
  std::vector<const Node*> producers;  // leaves that make these channels
  std::vector<std::string> members;    // every module with a slice, in graph order
  bool frozen = false;
  std::string frozen_reason;           // first reason it may not shrink
};

// A split along the channels at sizes the model writes as numbers
// (torch.split): removal rewrites its sizes operand. Each part is a list of
// pieces: `channels` channels of group `group` (-1: of none, never
// shrinking), each spread over `stride` positions.
struct SplitSizes {
  struct Piece {
    int group = -1;
    int64_t channels = 0;
    int64_t stride = 1;
  };
  const Node* node = nullptr;
  size_t operand = 1;   // the sizes (an int list), or one size (an int) when `single`
  bool single = false;  // split(x, size): every part the same size (the parts are coupled)
  std::vector<std::vector<Piece>> parts;
};

struct GroupAnalysis {
  std::vector<Group> groups;  // graph order of their first producer
  std::vector<SplitSizes> splits;
  // Index of a group by name, or -1.
  int find(const std::string& name) const;
};

// Needs the graph's example inputs (shapes decide how flatten spreads channels).
GroupAnalysis analyze_groups(const Graph& graph);

// "layer1.0.conv1  64 ch  [frozen: returned by the model]  members: ..." per group.
std::string describe_groups(const GroupAnalysis& analysis);

}  // namespace compress::pruning
