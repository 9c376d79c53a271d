#pragma once
// The distillation losses, as plain functions of tensors (differentiable in
// the student's arguments). docs/distillation.md has the formulas.
#include <ATen/ATen.h>

namespace compress::distillation {

// Hinton et al. 2015: KL(softmax(teacher / T) || softmax(student / T)) summed
// over classes, averaged over the batch ("batchmean", the mathematically
// correct reduction), times T^2 so the gradient's scale does not shrink as T
// grows. Logits [N, K]; T > 0.
at::Tensor kd_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits, double temperature);

// Zagoruyko & Komodakis 2017: the spatial attention map of features
// [N, C, H, W]: mean over channels of the squared activations, flattened to
// [N, H*W] and L2-normalised per sample.
at::Tensor attention_map(const at::Tensor& features);

// Mean squared difference of the two attention maps (the authors' at_loss);
// the channel counts may differ, the spatial sizes must not.
at::Tensor attention_loss(const at::Tensor& student_features, const at::Tensor& teacher_features);

}  // namespace compress::distillation
