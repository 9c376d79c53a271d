#pragma once
// Internal to src/pruning: what the criteria's files share.
#include <vector>

#include <ATen/ATen.h>

#include "compress/pruning/groups.h"
#include "compress/pruning/prune.h"

namespace compress::pruning::detail {

std::vector<double> tensor_to_vector(const at::Tensor& t);
// The l1 criterion's scores of one group.
std::vector<double> l1_importance(const Graph& g, const Group& grp);
// The attention criterion's scores of every group (attention_importance.cpp).
std::vector<std::vector<double>> attention_importance(const Graph& g, const GroupAnalysis& a, const PruneOptions& o);

}  // namespace compress::pruning::detail
