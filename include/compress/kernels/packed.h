#pragma once
// Packed weights: one self-describing byte blob per layer. The ops layer keeps
// it in an ordinary uint8 tensor, so it saves and loads with a model.
//
// Blob = 256-byte header (int64 fields below) + sections at 64-byte offsets:
//   comp  int32[n_pad]   per-output-channel compensation, folded at pack time:
//                         -a_zero_point * sum_k W[n][k]. The inner loops then
//                         multiply raw u8 activations and never see a zero point.
//   data  weights in `layout`
//   idx   sparse metadata (block columns / 2:4 indices), row_ptr
#include <cstdint>
#include <vector>

#include "compress/kernels/isa.h"

namespace compress::kernels {

enum class PackedKind : int64_t {
  gemm = 1,        // dense W[N][K]
  conv = 2,        // dense, K = kh*kw*c_in in (kh, kw, c) order; NHWC im2col rows
  depthwise = 3,   // W[c][kh][kw], groups == c_in == c_out
  // The sparse kinds serve linear layers (kh = kw = 1, c_in = k) and
  // convolutions (k = kh*kw*c_in in (kh, kw, c) order, like conv).
  sparse_1x4 = 4,  // blocks of 4 consecutive k in one output row
  sparse_2_4 = 5,  // at most 2 non-zeros in every group of 4 consecutive k
};

enum class Layout : int64_t {
  rowmajor_s8 = 0,      // W[n_pad][k_pad] s8 (reference)
  avx2_n16k2_s16 = 1,   // [n_pad/16][k_pad/2][16][2] s16 (Avx2Traits)
  vnni_n32k4_s8 = 2,    // [n_pad/32][k_pad/4][32][4] s8 (Avx512VnniTraits)
  depthwise_s16 = 3,    // [taps_pad2][c_pad16] s16, taps in (kh, kw) order
  sparse_1x4_csr = 4,   // row_ptr int32[n+1], block k0 int32[nnzb], values s8[nnzb][4]
  sparse_2_4_s8 = 5,    // values s8[n][k_pad/2], indices u8[n][k_pad/4] (2 bits each)
  // [n_pad/16][k_pad/4][16][4] s8 for vpmaddubsw, every adjacent k-pair
  // clipped to |w0| + |w1| <= 128 so its s16 sum cannot saturate
  // (255 * 128 = 32640 <= 32767); what clipping removed is kept exactly as a
  // sparse correction: row_ptr int32[n+1], entries int32 (k << 8 | (u8)delta).
  avx2_n16k4_u8s8 = 6,
  // The same byte order as avx2_n16k4_u8s8 with k_pad a multiple of 8, for
  // 7-bit activations (0..127: "reduce_range", PyTorch's x86 default): the
  // kernel adds the vpmaddubsw results of two k-quads in s16 before widening,
  // 3 multiply instructions per 64 MACs instead of 4. Exact because the
  // packer clips the four weights that meet in one s16 lane (k = 8o + 2h,
  // +1, +4, +5 for h = 0, 1) to sum |w| <= 258 (127 * 258 = 32766), keeping
  // the clipped part as the same sparse correction. Kernels refuse (BadInput)
  // activations above 127 instead of returning wrong sums.
  avx2_n16k8_u7s8 = 7,
  // The element order of avx2_n16k2_s16 stored as s8 (the kernel widens each
  // loaded panel to s16): exact for any weight like the s16 form, at the u8
  // layouts' 1 byte per weight. What the u8/u7 packers fall back to when
  // clipping would need too many corrections (e.g. untrained weights).
  avx2_n16k2_s8 = 8,
  // [taps][c_pad16] s8: depthwise_s16's order at 1 byte per weight and no
  // padding tap (the kernel widens and pairs the taps once per call). What
  // pack_depthwise_u8s8 writes; depthwise_s16 blobs still load and run.
  depthwise_s8 = 9,
  // The storage form of a dense or depthwise weight: W[n][k] s8 row-major
  // (depthwise: W[c][kh * kw]), no padding and no compensation section.
  // Saved models keep their weights in it (to_stored): independent of the
  // CPU that packed them, without the kernel layouts' padding (n to 16 or
  // 32, k to 4) and 4 bytes a channel of compensation. The ops pack it once
  // for the CPU they run on (from_stored); a kernel given it packs it on
  // every call.
  stored_s8 = 10,
  // stored_s8 for a weight packed for 7-bit activations: it packs back to
  // avx2_n16k8_u7s8 whatever the CPU (what the weight was packed as), so the
  // model refuses codes above 127 wherever it runs, as before it was saved.
  stored_u7_s8 = 11,
};

// Field indices of the int64 header.
enum HeaderField : int {
  kMagic = 0, kVersion, kKind, kLayout, kN, kK, kNPad, kKPad, kAZeroPoint,
  kCompOffset, kDataOffset, kDataBytes, kIdxOffset, kIdxBytes, kRowPtrOffset, kNnz,
  kKh, kKw, kCIn, kGroups, kTotalBytes, kHeaderFields
};
constexpr int64_t kHeaderBytes = 256;
constexpr int64_t kPackedMagic = 0x3130544B50534D43LL;  // "CMSPKT01" little-endian
constexpr int64_t kPackedVersion = 1;

// A read-only, validated view of a blob. Construction throws
// compress::Error(BadInput) with a one-line reason if the blob is not one of ours.
struct PackedView {
  PackedView(const uint8_t* blob, int64_t bytes);
  const int64_t* header() const { return reinterpret_cast<const int64_t*>(blob_); }
  PackedKind kind() const { return static_cast<PackedKind>(header()[kKind]); }
  Layout layout() const { return static_cast<Layout>(header()[kLayout]); }
  int64_t n() const { return header()[kN]; }
  int64_t k() const { return header()[kK]; }
  int64_t n_pad() const { return header()[kNPad]; }
  int64_t k_pad() const { return header()[kKPad]; }
  int32_t a_zero_point() const { return static_cast<int32_t>(header()[kAZeroPoint]); }
  int64_t kh() const { return header()[kKh]; }
  int64_t kw() const { return header()[kKw]; }
  int64_t c_in() const { return header()[kCIn]; }
  int64_t groups() const { return header()[kGroups]; }
  int64_t nnz() const { return header()[kNnz]; }
  const int32_t* comp() const { return reinterpret_cast<const int32_t*>(blob_ + header()[kCompOffset]); }
  const uint8_t* data() const { return blob_ + header()[kDataOffset]; }
  const uint8_t* idx() const { return blob_ + header()[kIdxOffset]; }
  const int32_t* row_ptr() const { return reinterpret_cast<const int32_t*>(blob_ + header()[kRowPtrOffset]); }
  const uint8_t* blob() const { return blob_; }
  int64_t bytes() const { return bytes_; }

 private:
  const uint8_t* blob_;
  int64_t bytes_;
};

// Weight of tap `t`, channel `ch` of a depthwise blob (either layout).
inline int32_t depthwise_weight(const PackedView& v, int64_t t, int64_t ch) {
  const int64_t i = t * v.n_pad() + ch;
  return v.layout() == Layout::depthwise_s16 ? reinterpret_cast<const int16_t*>(v.data())[i]
                                             : reinterpret_cast<const int8_t*>(v.data())[i];
}

// The dense layout the GEMM kernel of `isa` reads. With `activations_7bit`
// (activations quantized to 0..127) AVX2 gets avx2_n16k8_u7s8; other ISAs
// have no faster form for them and return their usual layout.
Layout dense_layout_for(Isa isa, bool activations_7bit = false);

// True if the layout requires activations (and their zero point) in 0..127.
inline bool layout_needs_7bit_activations(Layout l) {
  return l == Layout::avx2_n16k8_u7s8 || l == Layout::stored_u7_s8;
}

// True for the storage forms (stored_s8, stored_u7_s8).
inline bool is_storage_layout(Layout l) { return l == Layout::stored_s8 || l == Layout::stored_u7_s8; }

// Packs a dense s8 weight W[n][k] (row-major) for u8 activations whose zero
// point is `a_zero_point` (0..255; 0..127 for avx2_n16k8_u7s8). Throws
// BadInput on bad sizes.
// avx2_n16k4_u8s8 and avx2_n16k8_u7s8 are used only if the correction they need stays under
// `max_correction` of the weights (trained weights: well under 1%); otherwise
// the exact layout avx2_n16k2_s8 is packed instead (same results, same size,
// slower).
constexpr double kDefaultMaxCorrection = 0.02;
std::vector<uint8_t> pack_gemm_u8s8(const int8_t* w, int64_t n, int64_t k, int32_t a_zero_point,
                                   Layout layout, double max_correction = kDefaultMaxCorrection);
// Convolution weight in OHWI order: w[o][kh][kw][c_in]; groups must be 1.
std::vector<uint8_t> pack_conv_u8s8(const int8_t* w, int64_t c_out, int64_t kh, int64_t kw,
                                   int64_t c_in, int32_t a_zero_point, Layout layout,
                                   double max_correction = kDefaultMaxCorrection);
// Depthwise weight w[c][kh][kw] (channel multiplier 1), as depthwise_s8
// (depthwise_s16 only to test that older blobs still run; stored_s8 is its
// storage form).
std::vector<uint8_t> pack_depthwise_u8s8(const int8_t* w, int64_t c, int64_t kh, int64_t kw,
                                        int32_t a_zero_point, Layout layout = Layout::depthwise_s8);
// Sparse packing from a dense weight and a mask (same shape; non-zero = keep).
// 1x4: every 4-wide block along k with any kept entry is stored whole.
// 2:4: throws BadInput if some group of 4 along k keeps more than 2 entries.
std::vector<uint8_t> pack_sparse_1x4_u8s8(const int8_t* w, const uint8_t* mask, int64_t n,
                                         int64_t k, int32_t a_zero_point);
std::vector<uint8_t> pack_sparse_2_4_u8s8(const int8_t* w, const uint8_t* mask, int64_t n,
                                         int64_t k, int32_t a_zero_point);

// A convolution's sparse packing: the weight and mask in OHWI order
// (w[o][kh][kw][c_in]), so K runs (kh, kw, c) like the im2col rows of NHWC
// activations and a 1x4 block is 4 consecutive input channels at one tap
// (when c_in is a multiple of 4; otherwise blocks continue into the next tap,
// as K is one flat row). `kind` is sparse_1x4 or sparse_2_4; the blob records
// kh, kw and c_in for conv2d_u8s8.
std::vector<uint8_t> pack_sparse_conv_u8s8(const int8_t* w, const uint8_t* mask, int64_t c_out, int64_t kh,
                                          int64_t kw, int64_t c_in, int32_t a_zero_point, PackedKind kind);

// Row-major copy W[n][k] of the (possibly masked) weight a blob holds; for any
// kind and layout. Used by the reference kernels and by tests.
std::vector<int8_t> unpack_weight_rowmajor(const PackedView& v);

// True for a dense (gemm, conv) or depthwise blob packed for a kernel's
// layout, which to_stored can write: every such layout but the reference's
// and the storage forms themselves.
bool storable(const PackedView& v);
// The storage form of a storable blob (stored_u7_s8 for the 7-bit layout,
// stored_s8 otherwise): same kind, sizes, zero point and geometry. Throws
// BadInput for any other blob.
std::vector<uint8_t> to_stored(const PackedView& v);
// A blob in a storage form packed for the kernels of `isa`
// (dense_layout_for(isa); depthwise_s8 for a depthwise weight,
// avx2_n16k8_u7s8 for stored_u7_s8), byte for byte what packing the weight
// for that layout gives.
std::vector<uint8_t> from_stored(const PackedView& v, Isa isa);

}  // namespace compress::kernels
