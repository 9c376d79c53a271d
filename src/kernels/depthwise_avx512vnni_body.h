// dwconv_u8s8s32_avx512vnni_32c: depthwise convolution, 32 channels per
// step, two taps per vpdpwssd. The source of two translation units: native
// (depthwise_avx512vnni.cpp, AVX-512 flags on that file only) and against SIMD
// Everywhere for AVX2 machines (depthwise_avx512vnni_simde.cpp, test builds
// only). The includer provides the intrinsics and names the entry point with
// COMPRESS_DEPTHWISE_VNNI_ENTRY.
//
// The AVX2 kernel (conv_avx2.cpp) widens 16 channels of two taps to s16,
// interleaves them and multiplies with vpmaddwd, then adds: per 16 channels
// and tap pair two widening loads, two unpacks, two multiplies and two adds.
// Here a zmm holds 32 channels and vpdpwssd multiplies and accumulates in one
// instruction, so the same work is half the instructions per channel; the
// activations stay raw u8 (the padding taps read a row of zero points) and
// the weight's compensation row removes the zero point's share, as in every
// other kernel, so the accumulators are exact.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "epilogue_avx512.h"
#include "internal.h"

#ifndef COMPRESS_DEPTHWISE_VNNI_ENTRY
#error "define COMPRESS_DEPTHWISE_VNNI_ENTRY before including depthwise_avx512vnni_body.h"
#endif

namespace compress::kernels::detail {
namespace {

constexpr int64_t kBlock = 32;    // channels per step: one zmm of s16
constexpr int64_t kMaxTaps = 64;  // larger kernels go to the reference
constexpr int kStrip = 8;         // output pixels of a row at once (then 4, then 1)

// A whole block's epilogue constants in the accumulators' channel order:
// [0] the channels acc_lo holds, [1] acc_hi's.
struct BlockEpilogue {
  alignas(64) int32_t comp[2][16];
  alignas(64) float scale[2][16];
  alignas(64) float bias[2][16];
};

// 32 channels of one tap, widened to s16; `mask` selects the channels that
// exist (the last block's), the rest read as zero and are never stored.
template <bool kFull>
inline __m512i load_tap(const uint8_t* p, __mmask32 mask) {
  if constexpr (kFull) return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask, p));
}

template <OutType kOut, bool kResidual>
void rows(void* vctx, int64_t begin, int64_t end) {
  const DepthwiseJob& j = *static_cast<DepthwiseJob*>(vctx);
  const PackedView& W = *j.W;
  const int64_t C = j.channels, taps = j.kh * j.kw, pairs = (taps + 1) / 2;
  const int64_t blocks = (C + kBlock - 1) / kBlock, full = C / kBlock;
  const __mmask32 tail = static_cast<__mmask32>((uint64_t{1} << (C % kBlock)) - 1);
  int16_t* w = interleave_depthwise_pairs(W, taps, kBlock / 8, blocks);  // [pair][block] -> lo, hi
  // A row of zero points for the padding taps (and the odd tap's partner,
  // whose weights are zero), wide enough for a whole block's load.
  const int64_t zp_bytes = blocks * kBlock;
  auto* zp_row = static_cast<uint8_t*>(scratch_alloc(zp_bytes, false));
  std::fill(zp_row, zp_row + zp_bytes, static_cast<uint8_t>(W.a_zero_point()));
  // The epilogue's view of the output: rows of C channels, one per pixel.
  const GemmJob out{0, nullptr, 0, &W, j.output, C, j.ep, j.scale, j.bias};
  const Ep512 e(*j.ep);
  std::vector<Columns16> cols;
  cols.reserve(static_cast<size_t>(2 * blocks));
  for (int64_t n0 = 0; n0 < 2 * blocks * 16; n0 += 16) cols.emplace_back(out, n0);
  // The common case (u8 output, no residual, a whole block) runs the
  // epilogue in the accumulators' own channel order, with the block's
  // compensation, scale and bias permuted to match once per call, and puts
  // the bytes in order while narrowing (in-lane packs and one qword permute
  // instead of two permutes and two narrowing stores).
  constexpr bool kInOrder = kOut == OutType::u8 && !kResidual;
  auto* lanes = static_cast<BlockEpilogue*>(scratch_alloc(kInOrder ? full * sizeof(BlockEpilogue) : 0, false));
  for (int64_t blk = 0; kInOrder && blk < full; ++blk)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t d = 0; d < 16; ++d) {
        const int64_t ch = blk * kBlock + (d / 4) * 8 + half * 4 + d % 4;
        lanes[blk].comp[half][d] = W.comp()[ch];
        lanes[blk].scale[half][d] = j.scale[ch];
        lanes[blk].bias[half][d] = j.bias[ch];
      }
  const __m512 lo_bound = e.lo, hi_bound = e.hi;
  const __m512i out_zp = e.zp, low_qwords = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
  // Otherwise acc_lo (lane L: channels 8L..8L+3) and acc_hi (8L+4..8L+7)
  // back to channel order: channels 0-15 and 16-31 of the block.
  const __m512i first16 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const __m512i last16 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);

  // Per tap of the current window: its first byte, and how far the window
  // of the next output pixel of the row is (0 for a padding row, which every
  // pixel reads at zp_row). tap[taps] is the odd last tap's partner.
  const uint8_t* tap[kMaxTaps + 1];
  int64_t step[kMaxTaps + 1];
  tap[taps] = zp_row;
  step[taps] = 0;
  // Up to R output pixels m0.. of one row through one channel block: a tap
  // pair's weights are loaded once for all of them, and their accumulators
  // are independent chains (one pixel at a time waited on one chain).
  auto run = [&](auto strip, auto full_tag, int64_t blk, int64_t m0) {
    constexpr int R = decltype(strip)::value;
    constexpr bool kFull = decltype(full_tag)::value;
    const int64_t c0 = blk * kBlock;
    __m512i lo[R], hi[R];
    for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
    const int16_t* wb = w + blk * 2 * kBlock;
    for (int64_t p = 0; p < pairs; ++p, wb += blocks * 2 * kBlock) {
      const __m512i wlo = _mm512_load_si512(wb), whi = _mm512_load_si512(wb + kBlock);
      const uint8_t *t0 = tap[2 * p] + c0, *t1 = tap[2 * p + 1] + c0;
      const int64_t s0 = step[2 * p], s1 = step[2 * p + 1];
      for (int r = 0; r < R; ++r) {
        const __m512i x0 = load_tap<kFull>(t0 + r * s0, tail), x1 = load_tap<kFull>(t1 + r * s1, tail);
        lo[r] = _mm512_dpwssd_epi32(lo[r], _mm512_unpacklo_epi16(x0, x1), wlo);
        hi[r] = _mm512_dpwssd_epi32(hi[r], _mm512_unpackhi_epi16(x0, x1), whi);
      }
    }
    if constexpr (kInOrder && kFull) {
      const BlockEpilogue& q = lanes[blk];
      const __m512i comp_lo = _mm512_load_si512(q.comp[0]), comp_hi = _mm512_load_si512(q.comp[1]);
      const __m512 scale_lo = _mm512_load_ps(q.scale[0]), scale_hi = _mm512_load_ps(q.scale[1]);
      const __m512 bias_lo = _mm512_load_ps(q.bias[0]), bias_hi = _mm512_load_ps(q.bias[1]);
      auto requantize = [&](__m512i acc, __m512i comp, __m512 scale, __m512 bias) {
        __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc, comp)), scale, bias);
        y = _mm512_min_ps(_mm512_max_ps(y, lo_bound), hi_bound);  // as store_row16_as
        return _mm512_add_epi32(_mm512_cvtps_epi32(y), out_zp);   // within 0..255
      };
      for (int r = 0; r < R; ++r) {
        // Lane L of the pack: channels 8L..8L+7 as u16, then as bytes in
        // its low qword; the permute gathers the four low qwords.
        const __m512i words = _mm512_packus_epi32(requantize(lo[r], comp_lo, scale_lo, bias_lo),
                                                  requantize(hi[r], comp_hi, scale_hi, bias_hi));
        const __m512i bytes = _mm512_permutexvar_epi64(low_qwords, _mm512_packus_epi16(words, words));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint8_t*>(j.output) + (m0 + r) * C + c0),
                            _mm512_castsi512_si256(bytes));
      }
      return;
    }
    for (int r = 0; r < R; ++r) {
      store_row16_as<kOut, kResidual>(_mm512_permutex2var_epi64(lo[r], first16, hi[r]), cols[2 * blk], out, e, m0 + r);
      if (kFull || C - c0 > 16)
        store_row16_as<kOut, kResidual>(_mm512_permutex2var_epi64(lo[r], last16, hi[r]), cols[2 * blk + 1], out, e,
                                        m0 + r);
    }
  };
  auto pixels = [&](auto strip, int64_t m0) {
    for (int64_t blk = 0; blk < full; ++blk) run(strip, std::true_type{}, blk, m0);
    if (full < blocks) run(strip, std::false_type{}, full, m0);
  };
  // The output columns whose windows lie inside the input's width.
  const int64_t span_w = (j.kw - 1) * j.dil_w;
  const int64_t inner_lo = std::min(j.out_w, (j.pad_w + j.stride_w - 1) / j.stride_w);
  const int64_t last = j.width - 1 + j.pad_w - span_w;  // the last such column times the stride, at most
  const int64_t inner_hi = last < 0 ? inner_lo : std::max(inner_lo, std::min(j.out_w, last / j.stride_w + 1));
  // Strips of 8 measured faster than 4 at stride 1 and slower at stride 2
  // (docs/performance.md, "Depthwise on AVX-512").
  const bool wide_strips = j.stride_w == 1;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / j.out_h, oh = row % j.out_h;
    const int64_t ih0 = oh * j.stride_h - j.pad_h;
    NextRowsPrefetch prefetch(j, b, oh);
    auto window = [&](int64_t ow, int64_t pixels_ahead) {  // tap[] and step[] of pixel ow
      prefetch.ahead(pixels_ahead);
      const int64_t iw0 = ow * j.stride_w - j.pad_w;
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t ih = ih0 + (t / j.kw) * j.dil_h, iw = iw0 + (t % j.kw) * j.dil_w;
        const bool inside = ih >= 0 && ih < j.height && iw >= 0 && iw < j.width;
        tap[t] = inside ? j.input + ((b * j.height + ih) * j.width + iw) * C : zp_row;
        step[t] = inside ? j.stride_w * C : 0;
      }
    };
    int64_t ow = 0;
    for (; ow < inner_lo; ++ow) window(ow, 1), pixels(std::integral_constant<int, 1>{}, row * j.out_w + ow);
    for (; wide_strips && ow + kStrip <= inner_hi; ow += kStrip)
      window(ow, kStrip), pixels(std::integral_constant<int, kStrip>{}, row * j.out_w + ow);
    for (; ow + kStrip / 2 <= inner_hi; ow += kStrip / 2)
      window(ow, kStrip / 2), pixels(std::integral_constant<int, kStrip / 2>{}, row * j.out_w + ow);
    for (; ow < j.out_w; ++ow) window(ow, 1), pixels(std::integral_constant<int, 1>{}, row * j.out_w + ow);
  }
  scratch_free(lanes);
  scratch_free(zp_row);
  scratch_free(w);
}

template <OutType kOut>
RangeFn rows_for(bool residual) {
  return residual ? rows<kOut, true> : rows<kOut, false>;
}

}  // namespace

void COMPRESS_DEPTHWISE_VNNI_ENTRY(const DepthwiseJob& job, const ParallelFor& pf) {
  if (job.kh * job.kw > kMaxTaps) return depthwise_ref(job, pf);
  const bool residual = job.ep->residual != nullptr;
  const RangeFn fn = job.ep->out == OutType::u8   ? rows_for<OutType::u8>(residual)
                     : job.ep->out == OutType::s8 ? rows_for<OutType::s8>(residual)
                                                  : rows_for<OutType::f32>(residual);
  run_parallel(pf, job.batch * job.out_h, const_cast<DepthwiseJob*>(&job), fn);
}

}  // namespace compress::kernels::detail
