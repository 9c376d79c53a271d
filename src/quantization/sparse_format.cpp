// Which packing each INT8 layer's weight gets: dense or a sparse kernel's,
// chosen by timing both on this machine (sparse_format.h).
#include "compress/quantization/sparse_format.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <vector>

#include "compress/error.h"
#include "compress/ops/ops.h"

namespace compress::quant {

namespace {

using Clock = std::chrono::steady_clock;

struct Candidate {
  std::string format;
  at::Tensor packed;
  std::function<at::Tensor()> run;
  double best_ms = std::numeric_limits<double>::infinity();
};

std::string ms_text(double ms) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f ms", ms);
  return b;
}

}  // namespace

void check_sparse_mode(const std::string& mode) {
  if (mode != "auto" && mode != "off" && mode != "1x4" && mode != "2:4")
    bad_input("--sparse " + mode + ": unknown mode (auto, off, 1x4 or 2:4)");
}

std::string sparse_kernel_fit(const Node& layer) {
  if (layer.is_leaf(LeafKind::Linear)) return "";
  if (!layer.is_leaf(LeafKind::Conv2d)) return "not a conv or linear layer";
  if (std::get<ConvAttrs>(layer.attrs).groups == 1) return "";
  return "the sparse kernels take linear layers and convolutions with groups 1";
}

namespace {

// The choice shared by linear layers and convolutions. `rows` is the weight
// as the kernels order it ([N, K], a conv's K in (kh, kw, c) order), for the
// pattern checks; `pack` packs "dense", "1x4" or "2:4"; `run` calls the
// layer's op once with a packed weight on random codes of its shape;
// `shape_text` names that shape in the reason.
FormatChoice choose(const at::Tensor& rows, const std::string& mode, int repeats, double margin,
                    const std::function<at::Tensor(const std::string&)>& pack,
                    const std::function<at::Tensor(const at::Tensor&, bool)>& run, const std::string& shape_text) {
  check_sparse_mode(mode);
  FormatChoice c;
  const at::Tensor w = rows.contiguous();
  const int64_t n = w.size(0), k = w.size(1);
  const at::Tensor mask = w.ne(0);
  c.sparsity = 1.0 - mask.to(at::kDouble).mean().item<double>();
  if (mode == "off") {
    c.reason = "--sparse off";
    return c;
  }
  // Non-zeros per group of 4 along K (K padded with zeros, as the packers pad it).
  const int64_t k_pad = (k + 3) / 4 * 4;
  at::Tensor per_group = at::constant_pad_nd(mask.to(at::kInt), {0, k_pad - k}, 0).view({n, k_pad / 4, 4}).sum(-1);
  const bool has_empty_block = per_group.eq(0).any().item<bool>();
  const bool two_of_four = per_group.le(2).all().item<bool>();
  if (mode == "1x4" || mode == "2:4") {
    if (mode == "2:4" && !two_of_four) {
      c.reason = "--sparse 2:4, but some group of 4 weights keeps more than 2";
      return c;
    }
    c.format = mode == "1x4" ? "sparse_1x4" : "sparse_2_4";
    c.packed = pack(mode);
    c.reason = "--sparse " + mode;
    return c;
  }
  if (!has_empty_block && !two_of_four) {
    c.reason = "no all-zero 1x4 block and not 2:4: a sparse kernel would do every multiply the dense one does";
    return c;
  }
  std::vector<Candidate> cands;
  auto add = [&](const std::string& format, const std::string& packing) {
    Candidate cand;
    cand.format = format;
    cand.packed = pack(packing);
    const bool sparse = format != "dense";
    cand.run = [packed = cand.packed, sparse, &run] { return run(packed, sparse); };
    cands.push_back(cand);
  };
  add("dense", "dense");
  if (has_empty_block) add("sparse_1x4", "1x4");
  if (two_of_four) add("sparse_2_4", "2:4");
  for (auto& cand : cands) cand.run();  // warm-up: caches, thread pool, pages
  // Alternating rounds, so every candidate sees the same machine load.
  for (int r = 0; r < std::max(repeats, 1); ++r)
    for (auto& cand : cands) {
      const auto t0 = Clock::now();
      cand.run();
      cand.best_ms = std::min(cand.best_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  const Candidate* best = &cands[0];
  for (const auto& cand : cands) {
    if (cand.format == "sparse_1x4") c.sparse_1x4_ms = cand.best_ms;
    if (cand.format == "sparse_2_4") c.sparse_2_4_ms = cand.best_ms;
    if (cand.format != "dense" && cand.best_ms * margin < cands[0].best_ms && cand.best_ms < best->best_ms) best = &cand;
  }
  c.dense_ms = cands[0].best_ms;
  std::string times = "dense " + ms_text(c.dense_ms);
  if (c.sparse_1x4_ms > 0) times += ", sparse_1x4 " + ms_text(c.sparse_1x4_ms);
  if (c.sparse_2_4_ms > 0) times += ", sparse_2_4 " + ms_text(c.sparse_2_4_ms);
  times += " (" + shape_text + ", best of " + std::to_string(std::max(repeats, 1)) + ", " +
           std::to_string(at::get_num_threads()) + " thread(s))";
  c.format = best->format;
  if (best->format != "dense") c.packed = best->packed;
  c.reason = (best->format == "dense" ? "measured: no sparse packing is faster here: " : "measured fastest: ") + times;
  return c;
}

}  // namespace

FormatChoice choose_weight_format(const at::Tensor& weight_int8, int64_t rows, int64_t input_zero_point,
                                  const std::string& mode, int repeats, double margin) {
  const at::Tensor w = weight_int8.reshape({weight_int8.size(0), -1}).contiguous();
  const int64_t n = w.size(0), k = w.size(1);
  // Random codes of the layer's shape; the epilogue writes uint8 as most layers do.
  at::Tensor x, scale;
  if (mode == "auto") {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(n * 1000003 + k));
    x = at::randint(0, 256, {std::max<int64_t>(rows, 1), k}, gen, at::kByte);
    scale = at::full({n}, 1e-3, at::kFloat);
  }
  auto pack = [&](const std::string& format) {
    return format == "dense" ? ops::pack_linear_int8(w, input_zero_point, "auto")
                             : ops::pack_linear_int8_sparse(w, w.ne(0), input_zero_point, format);
  };
  auto run = [&](const at::Tensor& packed, bool sparse) {
    return sparse ? ops::linear_int8_sparse(x, packed, scale, c10::nullopt, 0, false, at::kByte, c10::nullopt, 1.0, 0)
                  : ops::linear_int8(x, packed, scale, c10::nullopt, 0, false, at::kByte, c10::nullopt, 1.0, 0);
  };
  return choose(w, mode, repeats, margin, pack, run, std::to_string(rows) + " rows");
}

FormatChoice choose_conv_weight_format(const at::Tensor& weight_int8, const ConvInput& input, int64_t input_zero_point,
                                       const std::string& mode, int repeats, double margin) {
  TORCH_CHECK(weight_int8.dim() == 4, "choose_conv_weight_format: the weight must be [O, I, kh, kw]");
  const int64_t n = weight_int8.size(0), c_in = weight_int8.size(1), kh = weight_int8.size(2), kw = weight_int8.size(3);
  // The kernels' K order (kh, kw, c): where the 1x4 blocks and 2:4 groups lie.
  const at::Tensor rows = weight_int8.permute({0, 2, 3, 1}).reshape({n, -1});
  at::Tensor x, scale;
  if (mode == "auto") {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(n * 1000003 + rows.size(1)));
    x = at::randint(0, 256, {std::max<int64_t>(input.batch, 1), input.height, input.width, c_in}, gen, at::kByte);
    scale = at::full({n}, 1e-3, at::kFloat);
  }
  auto pack = [&](const std::string& format) {
    return format == "dense" ? ops::pack_conv2d_int8(weight_int8, input_zero_point, 1, "auto")
                             : ops::pack_conv2d_int8_sparse(weight_int8, weight_int8.ne(0), input_zero_point, format);
  };
  auto run = [&](const at::Tensor& packed, bool sparse) {
    auto op = sparse ? ops::conv2d_int8_sparse : ops::conv2d_int8;
    return op(x, packed, scale, c10::nullopt, input.stride, input.padding, input.dilation, 0, false, at::kByte,
              c10::nullopt, 1.0, 0, 255);
  };
  const int64_t oh = (input.height + 2 * input.padding[0] - input.dilation[0] * (kh - 1) - 1) / input.stride[0] + 1;
  const int64_t ow = (input.width + 2 * input.padding[1] - input.dilation[1] * (kw - 1) - 1) / input.stride[1] + 1;
  const std::string shape = std::to_string(kh) + "x" + std::to_string(kw) + " conv stride " +
                            std::to_string(input.stride[0]) + " on " + std::to_string(input.batch) + "x" +
                            std::to_string(input.height) + "x" + std::to_string(input.width) + "x" +
                            std::to_string(c_in) + ", " + std::to_string(input.batch * oh * ow) + " rows";
  return choose(rows, mode, repeats, margin, pack, run, shape);
}

}  // namespace compress::quant
