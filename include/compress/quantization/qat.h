#pragma once
// Quantization-aware training (QAT): fake quantization inserted over the IR
// exactly where post-training quantization (quantize.h) rounds, trained
// with the Trainer, then converted to the same real INT8 model as PTQ.
//
//   Graph g = import_module(load_module("cnn.pt"));
//   g.set_example_inputs({InputSpec{{64, 1, 28, 28}}});
//   quant::QatModel qat = quant::prepare_qat(g, calib);        // fold BN, plan, calibrate, insert fake quant
//   torch::jit::Module m = export_module(qat.graph, quant::qat_export_options(qat));
//   train::TrainConfig cfg;                                    // any loss: set_loss for distillation
//   cfg.optimizer.groups.push_back(qat.scale_group(1e-3));     // scales: own lr, no weight decay
//   train::Trainer t(m, cfg);
//   t.add_callback(quant::qat_callback(qat));                  // keeps scales valid; STE's running ranges
//   t.fit(train_set);
//   quant::load_trained(qat, t.module());
//   quant::QuantizeReport report;
//   Graph int8 = quant::convert_qat(qat, &report);             // compress::conv2d_int8 / linear_int8
//
// The fake-quant graph is written by the same conversion code as the INT8
// graph (convert.cpp, in its fake-quant mode), so every rounding point
// matches: the input of each INT8 layer (where float enters: quantize_u8),
// each residual read by a fused add, and each INT8 layer's uint8 output
// after its fused ReLU / clamp; max_pool2d and flatten of codes stay exact;
// a layer only float ops read (the classifier) writes float without
// rounding. Each is
//   activations  aten::_fake_quantize_learnable_per_tensor_affine, codes 0..255
//   weights      aten::_fake_quantize_learnable_per_channel_affine, codes -127..127
// PyTorch's fake quantization computes round-half-even(x * (1 / scale)) +
// zero_point like the kernels' quantize_u8 (include/compress/kernels/quantize.h),
// and the INT8 model's weights are rounded with the same expression from the
// trained scales, so the two models differ only by float summation order and
// the epilogue's fused multiply-add (ties that fall the other way): their
// top-1 agrees to a few hundredths of a point (docs/quantization.md).
//
// Batch norm is folded into the convolutions before fake quantization (so
// QAT trains the folded weights; batch statistics are not updated), and
// dropout is stripped, as in PTQ.
//
// Methods:
//   lsq  the scales are trainable parameters (activation zero points stay at
//        their calibrated values): LSQ (Esser et al. 2020) with the gradient
//        scaled by 1 / sqrt(elements per sample (per channel for weights) * Qmax)
//   ste  the straight-through estimator; scales are buffers: weights' from
//        max|w| / 127 after every step, activations' from running (EMA)
//        min / max of the values the fake quantizers see
// Both start from PTQ calibration (QatOptions::calibration: method, percentile,
// exclude), and both pass gradients straight through inside the code range
// (zero outside).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "compress/ir/export.h"
#include "compress/ir/graph.h"
#include "compress/quantization/quantize.h"
#include "compress/train/optim.h"
#include "compress/train/trainer.h"

namespace compress::quant {

enum class QatMethod { Lsq, Ste };

// "lsq" | "ste"; Error(BadInput) otherwise.
QatMethod parse_qat_method(const std::string& name);
const char* qat_method_name(QatMethod m);

struct QatOptions {
  QatMethod method = QatMethod::Lsq;
  QuantizeOptions calibration;  // initial ranges (method, percentile), exclude
  double ema_momentum = 0.01;   // ste: weight of each batch's min / max in the running range
  double min_scale = 1e-8;      // scales are kept at least this after every step
};

// One activation rounding point.
struct FakeQuantActivation {
  ValueId value = -1;            // in QatModel::base: the value the INT8 model quantizes
  std::string scale, zero_point; // graph tensors [1] (scale: a parameter with lsq, else a buffer)
  std::string observed;          // the QAT graph's value the fake quantizer reads (STE taps it)
  double clamp_lo, clamp_hi;     // the fused activation's bounds (ste ranges stay inside them)
};

// One layer's per-channel weight quantizer.
struct FakeQuantWeight {
  std::string layer;             // module path
  std::string weight, scale, zero_point;  // graph tensors; scale [out_channels]
};

struct QatModel {
  QatOptions options;
  Graph base;   // the folded float graph the plan refers to (its weights are the untrained ones)
  Graph graph;  // base with fake quantization: export it, train it, evaluate it
  std::vector<FakeQuantActivation> activations;
  std::vector<FakeQuantWeight> weights;
  QuantizeReport plan_report;  // fold results and the layers left in float, with the reason

  // The trainable quantization parameters (lsq: every scale; ste: none).
  std::vector<std::string> scale_names() const;
  // Their optimizer group: own learning rate, no weight decay.
  train::ParamGroup scale_group(double lr) const;
};

// Strips dropout, folds batch norm, plans and calibrates a copy of `g` like
// quantize_static (same options), and inserts fake quantization at every
// point the conversion rounds, initialised from that calibration. `g` needs
// example inputs; it is left unchanged.
QatModel prepare_qat(const Graph& g, const CalibrationData& data, const QatOptions& options = {});

// The step of prepare_qat that edits the graph: `g` (folded, planned with
// `plan`, calibrated by `observers`) gets its fake quantizers, recorded in
// qat.activations / qat.weights (qat.options says the method).
void insert_fake_quant(Graph& g, const std::vector<FusedLayer>& plan, const std::map<ValueId, Observer>& observers,
                       QatModel& qat);

// What export_module needs for training with qat_callback: with ste the
// fake quantizers' inputs are tapped (forward returns (logits, taps...)).
ExportOptions qat_export_options(const QatModel& m);

// The trainer callback: after every optimizer step, clamps the scales to
// >= min_scale; with ste also sets the weight scales to max|w| / 127 and
// moves each activation range towards the batch's min / max (needs the
// module exported with qat_export_options). Holds a copy of what it needs.
std::shared_ptr<train::Callback> qat_callback(const QatModel& m);

// Copies the trained parameters and buffers of `trained` (exported from
// m.graph) back into m.graph, by name. Error(BadInput) when one is missing.
void load_trained(QatModel& m, const torch::jit::Module& trained);

// The real INT8 model: m.base with the trained weights, converted with the
// trained scales and zero points instead of calibrated ones. `report` (when
// given) gets the layers' scales and the float nodes, as from quantize_static.
Graph convert_qat(const QatModel& m, QuantizeReport* report = nullptr);

// Two classifiers side by side on the same labelled inputs (the fake-quant
// model and its INT8 conversion): top-1 of each (percent), how often their
// argmax agrees, and how far their logits are apart.
struct Agreement {
  int64_t count = 0;
  double top1_a = 0, top1_b = 0;     // percent
  double argmax_agree = 0;           // fraction of samples
  double max_abs_logit_diff = 0;
  double logit_sqnr_db = 0;          // b's logits against a's
  nlohmann::json to_json() const;
};
Agreement compare_classifiers(torch::jit::Module& a, torch::jit::Module& b, const at::Tensor& inputs,
                              const at::Tensor& labels, int64_t batch_size = 500);

}  // namespace compress::quant
