#include "compress/distillation/losses.h"

#include "compress/error.h"

namespace compress::distillation {

at::Tensor kd_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits, double temperature) {
  if (!(temperature > 0)) bad_input("temperature must be positive");
  if (student_logits.sizes() != teacher_logits.sizes()) {
    bad_input("student logits " + c10::str(student_logits.sizes()) + " and teacher logits " +
              c10::str(teacher_logits.sizes()) + " differ in shape");
  }
  const at::Tensor log_p_student = at::log_softmax(student_logits / temperature, 1);
  const at::Tensor log_p_teacher = at::log_softmax(teacher_logits.detach() / temperature, 1);
  const at::Tensor kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1).mean();
  return kl * (temperature * temperature);
}

at::Tensor attention_map(const at::Tensor& features) {
  if (features.dim() != 4) bad_input("attention maps need [N, C, H, W] features, got " + c10::str(features.sizes()));
  at::Tensor map = features.pow(2).mean(1).reshape({features.size(0), -1});
  // F.normalize's guard: a map of zeros stays zeros instead of NaN.
  return map / map.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
}

at::Tensor attention_loss(const at::Tensor& student_features, const at::Tensor& teacher_features) {
  if (student_features.dim() != 4 || teacher_features.dim() != 4 ||
      student_features.sizes().slice(2) != teacher_features.sizes().slice(2)) {
    bad_input("attention transfer needs features of the same spatial size, got student " +
              c10::str(student_features.sizes()) + " and teacher " + c10::str(teacher_features.sizes()));
  }
  return (attention_map(student_features) - attention_map(teacher_features.detach())).pow(2).mean();
}

}  // namespace compress::distillation
