// Packing: dense, depthwise and sparse weights into self-describing blobs.
#include "compress/kernels/packed.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "compress/error.h"
#include "compress/kernels/packing_traits.h"

namespace compress::kernels {
namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The int32 accumulator must hold sum_k 255 * 128 plus the compensation:
// 2 * 255 * 128 * K < 2^31  =>  K < 32896.
constexpr int64_t kMaxK = 32768;

void check_common(int64_t n, int64_t k, int32_t a_zero_point) {
  if (n <= 0 || k <= 0)
    bad_input("pack: weight must have positive sizes, got n=" + std::to_string(n) + " k=" + std::to_string(k));
  if (k > kMaxK)
    bad_input("pack: k=" + std::to_string(k) + " exceeds " + std::to_string(kMaxK) + " (int32 accumulator range)");
  if (a_zero_point < 0 || a_zero_point > 255)
    bad_input("pack: activation zero point " + std::to_string(a_zero_point) + " is outside 0..255");
}

// Lays out sections at 64-byte offsets and fills the header.
struct Builder {
  std::vector<uint8_t> blob;
  int64_t* h() { return reinterpret_cast<int64_t*>(blob.data()); }

  Builder(PackedKind kind, Layout layout, int64_t n, int64_t k, int64_t n_pad, int64_t k_pad,
          int32_t a_zp, int64_t data_bytes, int64_t idx_bytes, int64_t rowptr_bytes) {
    int64_t off = kHeaderBytes;
    const int64_t comp_off = off;
    off = round_up(off + (is_storage_layout(layout) ? 0 : n_pad * 4), 64);  // the storage forms have none
    const int64_t data_off = off;
    off = round_up(off + data_bytes, 64);
    const int64_t idx_off = off;
    off = round_up(off + idx_bytes, 64);
    const int64_t rowptr_off = off;
    off = round_up(off + rowptr_bytes, 64);
    blob.assign(static_cast<size_t>(off), 0);
    int64_t* hd = h();
    hd[kMagic] = kPackedMagic;
    hd[kVersion] = kPackedVersion;
    hd[kKind] = static_cast<int64_t>(kind);
    hd[kLayout] = static_cast<int64_t>(layout);
    hd[kN] = n; hd[kK] = k; hd[kNPad] = n_pad; hd[kKPad] = k_pad;
    hd[kAZeroPoint] = a_zp;
    hd[kCompOffset] = comp_off;
    hd[kDataOffset] = data_off; hd[kDataBytes] = data_bytes;
    hd[kIdxOffset] = idx_off; hd[kIdxBytes] = idx_bytes;
    hd[kRowPtrOffset] = rowptr_off;
    hd[kKh] = 1; hd[kKw] = 1; hd[kCIn] = k; hd[kGroups] = 1;
    hd[kTotalBytes] = off;
  }
  int32_t* comp() { return reinterpret_cast<int32_t*>(blob.data() + h()[kCompOffset]); }
  uint8_t* data() { return blob.data() + h()[kDataOffset]; }
  uint8_t* idx() { return blob.data() + h()[kIdxOffset]; }
  int32_t* row_ptr() { return reinterpret_cast<int32_t*>(blob.data() + h()[kRowPtrOffset]); }
};

// comp[n] = -a_zp * sum_k W'[n][k] over the weight as packed (masked entries excluded).
void fill_comp(int32_t* comp, const int8_t* w_rowmajor, int64_t n, int64_t k, int32_t a_zp) {
  for (int64_t i = 0; i < n; ++i) {
    int32_t s = 0;
    for (int64_t j = 0; j < k; ++j) s += w_rowmajor[i * k + j];
    comp[i] = -a_zp * s;
  }
}

// Clips every adjacent pair (k even, k + 1) of row-major w to |w0| + |w1| <= 128:
// the larger magnitude stays, the smaller is reduced; the removed part is one
// correction entry (k << 8 | (u8)delta). Returns the clipped weight.
std::vector<int8_t> clip_pairs(const int8_t* w, int64_t n, int64_t k, std::vector<int32_t>& row_ptr,
                               std::vector<int32_t>& entries) {
  constexpr int kBudget = Avx2U8Traits::kPairBudget;
  std::vector<int8_t> clipped(w, w + n * k);
  row_ptr.assign(n + 1, 0);
  entries.clear();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j + 1 < k; j += 2) {
      const int a = w[i * k + j], b = w[i * k + j + 1];
      if (std::abs(a) + std::abs(b) <= kBudget) continue;
      const bool keep_first = std::abs(a) >= std::abs(b);
      const int big = keep_first ? a : b, small = keep_first ? b : a;
      const int room = kBudget - std::abs(big);  // >= 0 since |big| <= 128
      const int reduced = small < 0 ? -room : room;
      const int64_t at = j + (keep_first ? 1 : 0);
      clipped[i * k + at] = static_cast<int8_t>(reduced);
      entries.push_back(static_cast<int32_t>((at << 8) | static_cast<uint8_t>(static_cast<int8_t>(small - reduced))));
    }
    row_ptr[i + 1] = static_cast<int32_t>(entries.size());
  }
  return clipped;
}

// Clips, for 7-bit activations, the four weights of row-major w that meet in
// one s16 lane of the u7 kernel (k = 8o + 2h, 8o + 2h + 1, 8o + 4 + 2h,
// 8o + 5 + 2h) to sum |w| <= 258, shrinking the largest magnitudes first;
// every shrunk weight leaves one correction entry, as in clip_pairs.
std::vector<int8_t> clip_lanes_u7(const int8_t* w, int64_t n, int64_t k, std::vector<int32_t>& row_ptr,
                                  std::vector<int32_t>& entries) {
  constexpr int kBudget = Avx2U7Traits::kLaneBudget;
  std::vector<int8_t> clipped(w, w + n * k);
  row_ptr.assign(n + 1, 0);
  entries.clear();
  for (int64_t i = 0; i < n; ++i) {
    int8_t* row = clipped.data() + i * k;
    for (int64_t o = 0; o < k; o += 8)
      for (int64_t h = 0; h < 2; ++h) {
        int64_t at[4];
        int count = 0, sum = 0;
        for (int64_t j : {o + 2 * h, o + 2 * h + 1, o + 4 + 2 * h, o + 5 + 2 * h})
          if (j < k) {
            at[count++] = j;
            sum += std::abs(row[j]);
          }
        while (sum > kBudget) {
          int64_t big = at[0];
          for (int c = 1; c < count; ++c)
            if (std::abs(row[at[c]]) > std::abs(row[big])) big = at[c];
          const int mag = std::abs(row[big]), cut = std::min(mag, sum - kBudget);
          const int reduced = row[big] < 0 ? -(mag - cut) : mag - cut;
          const int delta = row[big] - reduced;  // |delta| <= 128, fits the entry's byte
          entries.push_back(static_cast<int32_t>((big << 8) | static_cast<uint8_t>(static_cast<int8_t>(delta))));
          row[big] = static_cast<int8_t>(reduced);
          sum -= cut;
        }
      }
    row_ptr[i + 1] = static_cast<int32_t>(entries.size());
  }
  return clipped;
}

// W[n][k] into the [n_pad/16][k_pad/2][16][2] order of Avx2Traits, as s16 or s8.
template <typename T>
void store_n16k2(T* d, const int8_t* w, int64_t n, int64_t k, int64_t k_pad) {
  constexpr int64_t NR = Avx2Traits::NR;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t panel = i / NR, col = i % NR, pair = j / 2, half = j % 2;
      d[((panel * (k_pad / 2) + pair) * NR + col) * 2 + half] = w[i * k + j];
    }
}

std::vector<uint8_t> pack_dense(PackedKind kind, const int8_t* w, int64_t n, int64_t k,
                                int32_t a_zp, Layout layout, double max_correction) {
  check_common(n, k, a_zp);
  const bool u7 = layout == Layout::avx2_n16k8_u7s8;
  if (u7 && a_zp > Avx2U7Traits::kMaxActivation)
    bad_input("pack: activation zero point " + std::to_string(a_zp) +
              " is outside 0..127, the range of the 7-bit activation layout");
  if (layout == Layout::avx2_n16k4_u8s8 || u7) {
    // Both u8-path layouts: same byte order ([n_pad/16][k_pad/4][16][4]),
    // different clipping rule and k padding.
    static_assert(Avx2U8Traits::NR == Avx2U7Traits::NR, "u8 and u7 layouts share the column blocking");
    std::vector<int32_t> row_ptr, entries;
    const std::vector<int8_t> clipped =
        u7 ? clip_lanes_u7(w, n, k, row_ptr, entries) : clip_pairs(w, n, k, row_ptr, entries);
    if (static_cast<double>(entries.size()) > max_correction * static_cast<double>(n * k))
      return pack_dense(kind, w, n, k, a_zp, Layout::avx2_n16k2_s8, 0);
    constexpr int64_t NR = Avx2U8Traits::NR;
    const int64_t n_pad = round_up(n, NR), k_pad = round_up(k, u7 ? Avx2U7Traits::KPACK : Avx2U8Traits::KPACK);
    const int64_t nnz = static_cast<int64_t>(entries.size());
    Builder b(kind, layout, n, k, n_pad, k_pad, a_zp, n_pad * k_pad, nnz * 4, (n + 1) * 4);
    b.h()[kNnz] = nnz;
    fill_comp(b.comp(), w, n, k, a_zp);  // over the full weight: clipped + correction
    auto* d = reinterpret_cast<int8_t*>(b.data());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j)
        d[((i / NR * (k_pad / 4) + j / 4) * NR + i % NR) * 4 + j % 4] = clipped[i * k + j];
    if (nnz) std::memcpy(b.idx(), entries.data(), static_cast<size_t>(nnz) * 4);
    std::memcpy(b.row_ptr(), row_ptr.data(), row_ptr.size() * 4);
    return std::move(b.blob);
  }
  int64_t n_pad = n, k_pad = k, bytes = 0;
  switch (layout) {
    case Layout::rowmajor_s8:
    case Layout::stored_s8:
    case Layout::stored_u7_s8: bytes = n * k; break;
    case Layout::avx2_n16k2_s16:
    case Layout::avx2_n16k2_s8:
      n_pad = round_up(n, Avx2Traits::NR);
      k_pad = round_up(k, Avx2Traits::KPACK);
      bytes = n_pad * k_pad * (layout == Layout::avx2_n16k2_s16 ? 2 : 1);
      break;
    case Layout::vnni_n32k4_s8:
      n_pad = round_up(n, Avx512VnniTraits::NR);
      k_pad = round_up(k, Avx512VnniTraits::KPACK);
      bytes = n_pad * k_pad;
      break;
    default: bad_input("pack: layout is not a dense GEMM layout");
  }
  Builder b(kind, layout, n, k, n_pad, k_pad, a_zp, bytes, 0, 0);
  if (!is_storage_layout(layout)) fill_comp(b.comp(), w, n, k, a_zp);
  if (layout == Layout::rowmajor_s8 || is_storage_layout(layout)) {
    std::memcpy(b.data(), w, static_cast<size_t>(n * k));
  } else if (layout == Layout::avx2_n16k2_s16) {
    store_n16k2(reinterpret_cast<int16_t*>(b.data()), w, n, k, k_pad);
  } else if (layout == Layout::avx2_n16k2_s8) {
    store_n16k2(reinterpret_cast<int8_t*>(b.data()), w, n, k, k_pad);
  } else {
    constexpr int64_t NR = Avx512VnniTraits::NR;
    auto* d = reinterpret_cast<int8_t*>(b.data());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const int64_t panel = i / NR, col = i % NR, quad = j / 4, q = j % 4;
        d[((panel * (k_pad / 4) + quad) * NR + col) * 4 + q] = w[i * k + j];
      }
  }
  return std::move(b.blob);
}

}  // namespace

namespace {

// Names of the header fields, for error messages ("field 'n_pad'").
const char* field_name(int f) {
  static const char* const names[kHeaderFields] = {
      "magic", "version", "kind", "layout", "n", "k", "n_pad", "k_pad", "a_zero_point", "comp_offset",
      "data_offset", "data_bytes", "idx_offset", "idx_bytes", "row_ptr_offset", "nnz", "kh", "kw", "c_in",
      "groups", "total_bytes"};
  return names[f];
}

// Validation of a blob read from outside (a saved model): every header field,
// every section inside the blob, every index a kernel follows. A blob that
// passes cannot make any kernel read or write out of bounds; values inside
// the sections (weights, compensation) only change the numbers computed.
class BlobChecker {
 public:
  BlobChecker(const uint8_t* blob, int64_t bytes) : blob_(blob), bytes_(bytes) {}
  const int64_t* h() const { return reinterpret_cast<const int64_t*>(blob_); }

  [[noreturn]] void fail(int f, const std::string& why) const {
    bad_input("packed weight: field '" + std::string(field_name(f)) + "' " + why);
  }
  // Field f must lie in lo..hi.
  void range(int f, int64_t lo, int64_t hi) const {
    if (h()[f] < lo || h()[f] > hi)
      fail(f, "is " + std::to_string(h()[f]) + ", outside " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  // Field f must equal `want` (what the other fields imply).
  void equal(int f, int64_t want, const char* because) const {
    if (h()[f] != want)
      fail(f, "is " + std::to_string(h()[f]) + ", expected " + std::to_string(want) + " (" + because + ")");
  }
  // The section at field `off` holds `len` bytes inside the blob, 64-byte aligned.
  void section(int off, int64_t len) const {
    const int64_t o = h()[off];
    if (o < kHeaderBytes || o % 64 != 0 || o > bytes_ || len > bytes_ - o)
      fail(off, "is " + std::to_string(o) + ": a section of " + std::to_string(len) +
                    " bytes there does not fit the 64-byte aligned space after the header of a " +
                    std::to_string(bytes_) + "-byte blob");
  }
  // The content of a section is wrong: "section 'row_ptr': ...".
  [[noreturn]] void fail_section(const char* name, const std::string& why) const {
    bad_input("packed weight: section '" + std::string(name) + "': " + why);
  }
  const int32_t* i32(int off) const { return reinterpret_cast<const int32_t*>(blob_ + h()[off]); }

  // CSR row pointers: rp[0] = 0, non-decreasing, rp[n] = nnz, at most
  // `per_row` entries a row.
  void row_ptr(int64_t n, int64_t nnz, int64_t per_row) const {
    const int32_t* rp = i32(kRowPtrOffset);
    if (rp[0] != 0) fail_section("row_ptr", "row_ptr[0] is " + std::to_string(rp[0]) + ", expected 0");
    // Branch-free first, as for the sparse indices below: with every entry
    // non-negative (bit 31 clear), a step outside 0..per_row is above
    // per_row as unsigned.
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto a = static_cast<uint32_t>(rp[i]), b = static_cast<uint32_t>(rp[i + 1]);
      bad |= static_cast<uint32_t>(b - a > static_cast<uint32_t>(per_row)) | (b >> 31);
    }
    for (int64_t i = 0; bad && i < n; ++i)
      if (rp[i + 1] < rp[i] || rp[i + 1] - rp[i] > per_row)
        fail_section("row_ptr", "row_ptr[" + std::to_string(i + 1) + "] = " + std::to_string(rp[i + 1]) +
                                " after " + std::to_string(rp[i]) + " (must not decrease, at most " +
                                std::to_string(per_row) + " entries a row)");
    if (rp[n] != nnz) fail_section("row_ptr", "row_ptr[n] is " + std::to_string(rp[n]) + ", nnz is " + std::to_string(nnz));
  }

 private:
  const uint8_t* blob_;
  int64_t bytes_;
};

bool dense_layout(Layout l) {
  return l == Layout::rowmajor_s8 || is_storage_layout(l) || l == Layout::avx2_n16k2_s16 || l == Layout::avx2_n16k2_s8 ||
         l == Layout::vnni_n32k4_s8 ||
         l == Layout::avx2_n16k4_u8s8 || l == Layout::avx2_n16k8_u7s8;
}

// Padding multiples (n, k) of each layout, as the packers above round.
void padding_of(Layout l, int64_t& nm, int64_t& km) {
  switch (l) {
    case Layout::avx2_n16k2_s16:
    case Layout::avx2_n16k2_s8: nm = Avx2Traits::NR; km = Avx2Traits::KPACK; break;
    case Layout::vnni_n32k4_s8: nm = Avx512VnniTraits::NR; km = Avx512VnniTraits::KPACK; break;
    case Layout::avx2_n16k4_u8s8: nm = Avx2U8Traits::NR; km = Avx2U8Traits::KPACK; break;
    case Layout::avx2_n16k8_u7s8: nm = Avx2U7Traits::NR; km = Avx2U7Traits::KPACK; break;
    case Layout::depthwise_s16: nm = DepthwiseTraits::CV; km = 2; break;
    case Layout::depthwise_s8: nm = DepthwiseTraits::CV; km = 1; break;
    case Layout::sparse_1x4_csr:
    case Layout::sparse_2_4_s8: nm = 1; km = 4; break;
    default: nm = 1; km = 1; break;
  }
}

}  // namespace

PackedView::PackedView(const uint8_t* blob, int64_t bytes) : blob_(blob), bytes_(bytes) {
  if (blob == nullptr || bytes < kHeaderBytes)
    bad_input("packed weight: too small to hold a header (" + std::to_string(bytes) + " bytes)");
  if (reinterpret_cast<uintptr_t>(blob) % 8 != 0)
    bad_input("packed weight: the blob does not start at an 8-byte aligned address (a sliced tensor?)");
  const BlobChecker c(blob, bytes);
  const int64_t* h = header();
  if (h[kMagic] != kPackedMagic) c.fail(kMagic, "does not match: not a compress packed blob (bad magic)");
  if (h[kVersion] != kPackedVersion)
    c.fail(kVersion, "is " + std::to_string(h[kVersion]) + "; only version " + std::to_string(kPackedVersion) +
                         " is supported");
  if (h[kTotalBytes] != bytes)
    c.fail(kTotalBytes, "says " + std::to_string(h[kTotalBytes]) + " bytes, the tensor has " + std::to_string(bytes));
  c.range(kKind, 1, 5);
  c.range(kLayout, 0, 11);
  const PackedKind kd = kind();
  const Layout l = layout();
  const bool depthwise_layout = l == Layout::depthwise_s16 || l == Layout::depthwise_s8 || l == Layout::stored_s8;
  const bool layout_fits = (kd == PackedKind::gemm || kd == PackedKind::conv) ? dense_layout(l)
                           : kd == PackedKind::depthwise                     ? depthwise_layout
                           : kd == PackedKind::sparse_1x4                    ? l == Layout::sparse_1x4_csr
                                                                             : l == Layout::sparse_2_4_s8;
  if (!layout_fits)
    c.fail(kLayout, "is " + std::to_string(h[kLayout]) + ", not a layout of kind " + std::to_string(h[kKind]));

  // Sizes first: they bound every product below (n * k_pad < 2^31 * 2^15).
  c.range(kN, 1, int64_t{1} << 31);
  c.range(kK, 1, kMaxK);
  const int64_t n = h[kN], k = h[kK];
  int64_t nm = 1, km = 1;
  padding_of(l, nm, km);
  c.equal(kNPad, round_up(n, nm), "n rounded up to the layout's column block");
  c.equal(kKPad, round_up(k, km), "k rounded up to the layout's k block");
  const int64_t n_pad = h[kNPad], k_pad = h[kKPad];
  c.range(kAZeroPoint, 0, layout_needs_7bit_activations(l) ? Avx2U7Traits::kMaxActivation : 255);

  // Geometry: a convolution's k is kh * kw * c_in; depthwise has one tap row per channel.
  // Sparse blobs may be a convolution's (pack_sparse_conv_u8s8) or a linear layer's (kh = kw = 1).
  if (kd != PackedKind::gemm) {
    c.range(kKh, 1, k);
    c.range(kKw, 1, k);
  } else {
    c.equal(kKh, 1, "only convolution and sparse weights have a kernel height");
    c.equal(kKw, 1, "only convolution and sparse weights have a kernel width");
  }
  if (kd == PackedKind::depthwise) {
    c.equal(kK, h[kKh] * h[kKw], "depthwise k is kh * kw taps");
    c.equal(kCIn, n, "depthwise has as many input channels as outputs");
    c.equal(kGroups, n, "depthwise groups equal the channels");
  } else {
    c.range(kCIn, 1, k);
    c.equal(kK, h[kKh] * h[kKw] * h[kCIn], "k is kh * kw * c_in");
    c.equal(kGroups, 1, "only depthwise convolutions are grouped");
  }

  // Sections: their sizes follow from the fields above.
  const bool corrected = l == Layout::avx2_n16k4_u8s8 || l == Layout::avx2_n16k8_u7s8;
  int64_t data = 0, idx = 0, nnz = 0;
  switch (l) {
    case Layout::rowmajor_s8:
    case Layout::stored_s8:
    case Layout::stored_u7_s8: data = n * k; break;
    case Layout::avx2_n16k2_s16: data = n_pad * k_pad * 2; break;
    case Layout::avx2_n16k2_s8: data = n_pad * k_pad; break;
    case Layout::depthwise_s16: data = n_pad * k_pad * 2; break;
    case Layout::depthwise_s8: data = n_pad * k_pad; break;
    case Layout::vnni_n32k4_s8: data = n_pad * k_pad; break;
    case Layout::avx2_n16k4_u8s8:
    case Layout::avx2_n16k8_u7s8:
      c.range(kNnz, 0, n * k);
      nnz = h[kNnz];
      data = n_pad * k_pad;
      idx = nnz * 4;
      break;
    case Layout::sparse_1x4_csr:
      c.range(kNnz, 0, n * (k_pad / 4));
      nnz = h[kNnz];
      data = idx = nnz * 4;
      break;
    case Layout::sparse_2_4_s8:
      nnz = n * (k_pad / 4) * 2;
      data = nnz;
      idx = n * (k_pad / 4);
      break;
  }
  c.equal(kNnz, nnz, "the entry count the layout implies");
  c.equal(kDataBytes, data, "the data size the layout implies");
  c.equal(kIdxBytes, idx, "the index size the layout implies");
  const bool stored = is_storage_layout(l);  // no compensation: recomputed when packed for a kernel
  c.section(kCompOffset, stored ? 0 : n_pad * 4);
  c.section(kDataOffset, data);
  c.section(kIdxOffset, idx);
  const bool has_row_ptr = corrected || l == Layout::sparse_1x4_csr;
  c.section(kRowPtrOffset, has_row_ptr ? (n + 1) * 4 : 0);

  // Indices the kernels follow.
  if (has_row_ptr) c.row_ptr(n, nnz, corrected ? k : k_pad / 4);
  if (corrected) {
    const int32_t* e = c.i32(kIdxOffset);
    for (int64_t t = 0; t < nnz; ++t)
      if (e[t] < 0 || (e[t] >> 8) >= k)
        c.fail_section("idx", "correction " + std::to_string(t) + " names k = " + std::to_string(e[t] >> 8) +
                               ", outside 0.." + std::to_string(k - 1));
  } else if (l == Layout::sparse_1x4_csr) {
    // Every op call validates its blob, and a sparse one has an index per kept
    // block: a branch-free scan first (the compiler vectorises it; the
    // branching loop cost about half the VNNI kernel's time on a 1024 x 1024
    // layer at 90%), the search for the message only when it fails.
    const int32_t* bk = c.i32(kIdxOffset);
    const auto k32 = static_cast<uint32_t>(k);  // k <= kMaxK
    uint32_t bad = 0;
    for (int64_t t = 0; t < nnz; ++t) {
      const auto b = static_cast<uint32_t>(bk[t]);  // a negative start wraps above k
      bad |= static_cast<uint32_t>(b >= k32) | (b & 3u);
    }
    for (int64_t t = 0; bad && t < nnz; ++t)
      if (bk[t] < 0 || bk[t] >= k || bk[t] % 4 != 0)
        c.fail_section("idx", "block " + std::to_string(t) + " starts at k = " + std::to_string(bk[t]) +
                               ", not a multiple of 4 in 0.." + std::to_string(k - 1));
  } else if (l == Layout::sparse_2_4_s8) {
    const uint8_t* ix = blob + h[kIdxOffset];
    for (int64_t t = 0; t < idx; ++t)
      if (ix[t] > 15 || (ix[t] & 3) >= (ix[t] >> 2))
        c.fail_section("idx", "2:4 index byte " + std::to_string(t) + " is " + std::to_string(ix[t]) +
                               " (two positions 0..3, the first below the second)");
  }
  // The compensation: |comp| <= 255 * 128 * k keeps acc + comp inside int32 (see kMaxK).
  const int32_t* comp = c.i32(kCompOffset);
  const int64_t comp_max = 255 * 128 * k;
  for (int64_t i = 0; i < (stored ? 0 : n_pad); ++i)
    if (comp[i] < -comp_max || comp[i] > comp_max)
      c.fail_section("comp", "compensation of channel " + std::to_string(i) + " is " +
                              std::to_string(comp[i]) + ", beyond 255 * 128 * k");
}

Layout dense_layout_for(Isa isa, bool activations_7bit) {
  switch (isa) {
    case Isa::avx2: return activations_7bit ? Layout::avx2_n16k8_u7s8 : Layout::avx2_n16k4_u8s8;
    case Isa::avx512vnni:
    case Isa::amx: return Layout::vnni_n32k4_s8;
    default: return Layout::rowmajor_s8;
  }
}

std::vector<uint8_t> pack_gemm_u8s8(const int8_t* w, int64_t n, int64_t k, int32_t a_zero_point,
                                   Layout layout, double max_correction) {
  return pack_dense(PackedKind::gemm, w, n, k, a_zero_point, layout, max_correction);
}

std::vector<uint8_t> pack_conv_u8s8(const int8_t* w, int64_t c_out, int64_t kh, int64_t kw,
                                   int64_t c_in, int32_t a_zero_point, Layout layout, double max_correction) {
  if (kh <= 0 || kw <= 0 || c_in <= 0) bad_input("pack_conv: kernel sizes and channels must be positive");
  auto blob = pack_dense(PackedKind::conv, w, c_out, kh * kw * c_in, a_zero_point, layout, max_correction);
  auto* h = reinterpret_cast<int64_t*>(blob.data());
  h[kKh] = kh; h[kKw] = kw; h[kCIn] = c_in; h[kGroups] = 1;
  return blob;
}

std::vector<uint8_t> pack_depthwise_u8s8(const int8_t* w, int64_t c, int64_t kh, int64_t kw,
                                        int32_t a_zero_point, Layout layout) {
  check_common(c, kh * kw, a_zero_point);
  const bool stored = layout == Layout::stored_s8;
  if (layout != Layout::depthwise_s8 && layout != Layout::depthwise_s16 && !stored)
    bad_input("pack: layout is not a depthwise layout");
  const int64_t elem = layout == Layout::depthwise_s16 ? 2 : 1;
  // The s16 form pads the taps to pairs; the s8 form does not (the kernel
  // pairs them while widening): 9 bytes per channel of a 3x3, not 10. The
  // storage form is w itself: no channel padding, no compensation.
  const int64_t taps = kh * kw, taps_pad = elem == 2 ? round_up(taps, 2) : taps;
  const int64_t c_pad = stored ? c : round_up(c, DepthwiseTraits::CV);
  Builder b(PackedKind::depthwise, layout, c, taps, c_pad, taps_pad, a_zero_point, taps_pad * c_pad * elem, 0, 0);
  b.h()[kKh] = kh; b.h()[kKw] = kw; b.h()[kCIn] = c; b.h()[kGroups] = c;
  if (stored) {
    std::memcpy(b.data(), w, static_cast<size_t>(c * taps));
    return std::move(b.blob);
  }
  fill_comp(b.comp(), w, c, taps, a_zero_point);
  auto store = [&](auto* d) {
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t t = 0; t < taps; ++t) d[t * c_pad + ch] = w[ch * taps + t];
  };
  if (elem == 2) {
    store(reinterpret_cast<int16_t*>(b.data()));
  } else {
    store(reinterpret_cast<int8_t*>(b.data()));
  }
  return std::move(b.blob);
}

std::vector<uint8_t> pack_sparse_1x4_u8s8(const int8_t* w, const uint8_t* mask, int64_t n,
                                         int64_t k, int32_t a_zero_point) {
  check_common(n, k, a_zero_point);
  const int64_t k_pad = round_up(k, 4);
  std::vector<int8_t> masked(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n * k; ++i) masked[i] = mask[i] ? w[i] : 0;
  std::vector<int32_t> row_ptr(n + 1, 0), block_k;
  std::vector<int8_t> values;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k0 = 0; k0 < k; k0 += 4) {
      bool keep = false;
      for (int64_t j = k0; j < std::min(k, k0 + 4); ++j) keep = keep || mask[i * k + j];
      if (!keep) continue;
      block_k.push_back(static_cast<int32_t>(k0));
      for (int64_t j = k0; j < k0 + 4; ++j) values.push_back(j < k ? masked[i * k + j] : 0);
    }
    row_ptr[i + 1] = static_cast<int32_t>(block_k.size());
  }
  const int64_t nnzb = static_cast<int64_t>(block_k.size());
  Builder b(PackedKind::sparse_1x4, Layout::sparse_1x4_csr, n, k, n, k_pad, a_zero_point,
            nnzb * 4, nnzb * 4, (n + 1) * 4);
  b.h()[kNnz] = nnzb;
  fill_comp(b.comp(), masked.data(), n, k, a_zero_point);
  if (nnzb) {
    std::memcpy(b.data(), values.data(), values.size());
    std::memcpy(b.idx(), block_k.data(), block_k.size() * 4);
  }
  std::memcpy(b.row_ptr(), row_ptr.data(), row_ptr.size() * 4);
  return std::move(b.blob);
}

std::vector<uint8_t> pack_sparse_conv_u8s8(const int8_t* w, const uint8_t* mask, int64_t c_out, int64_t kh,
                                          int64_t kw, int64_t c_in, int32_t a_zero_point, PackedKind kind) {
  if (kh <= 0 || kw <= 0 || c_in <= 0) bad_input("pack_sparse_conv: kernel sizes and channels must be positive");
  if (kind != PackedKind::sparse_1x4 && kind != PackedKind::sparse_2_4)
    bad_input("pack_sparse_conv: the kind must be sparse_1x4 or sparse_2_4");
  const int64_t k = kh * kw * c_in;
  auto blob = kind == PackedKind::sparse_1x4 ? pack_sparse_1x4_u8s8(w, mask, c_out, k, a_zero_point)
                                             : pack_sparse_2_4_u8s8(w, mask, c_out, k, a_zero_point);
  auto* h = reinterpret_cast<int64_t*>(blob.data());
  h[kKh] = kh; h[kKw] = kw; h[kCIn] = c_in;
  return blob;
}

std::vector<uint8_t> pack_sparse_2_4_u8s8(const int8_t* w, const uint8_t* mask, int64_t n,
                                         int64_t k, int32_t a_zero_point) {
  check_common(n, k, a_zero_point);
  const int64_t k_pad = round_up(k, 4), groups = k_pad / 4;
  Builder b(PackedKind::sparse_2_4, Layout::sparse_2_4_s8, n, k, n, k_pad, a_zero_point,
            n * groups * 2, n * groups, 0);
  b.h()[kNnz] = n * groups * 2;
  std::vector<int8_t> masked(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n * k; ++i) masked[i] = mask[i] ? w[i] : 0;
  fill_comp(b.comp(), masked.data(), n, k, a_zero_point);
  auto* vals = reinterpret_cast<int8_t*>(b.data());
  uint8_t* idx = b.idx();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t g = 0; g < groups; ++g) {
      int kept[4], count = 0;
      for (int q = 0; q < 4; ++q) {
        const int64_t j = g * 4 + q;
        if (j < k && mask[i * k + j]) {
          if (count == 2)
            bad_input("pack 2:4: row " + std::to_string(i) + " keeps more than 2 of the 4 weights " +
                      std::to_string(g * 4) + ".." + std::to_string(g * 4 + 3));
          kept[count++] = q;
        }
      }
      // Fewer than two kept: fill with unused positions holding zero weight.
      for (int q = 0; q < 4 && count < 2; ++q)
        if (count == 0 || kept[0] != q) kept[count++] = q;
      if (kept[0] > kept[1]) std::swap(kept[0], kept[1]);
      for (int s = 0; s < 2; ++s) {
        const int64_t j = g * 4 + kept[s];
        vals[(i * groups + g) * 2 + s] = (j < k) ? masked[i * k + j] : 0;
      }
      idx[i * groups + g] = static_cast<uint8_t>(kept[0] | (kept[1] << 2));
    }
  return std::move(b.blob);
}

namespace {

// The inverse of store_n16k2.
template <typename T>
void load_n16k2(const T* d, int8_t* w, int64_t n, int64_t k, int64_t k_pad) {
  constexpr int64_t NR = Avx2Traits::NR;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j)
      w[i * k + j] = static_cast<int8_t>(d[((i / NR * (k_pad / 2) + j / 2) * NR + i % NR) * 2 + j % 2]);
}

}  // namespace

std::vector<int8_t> unpack_weight_rowmajor(const PackedView& v) {
  const int64_t n = v.n(), k = v.k();
  std::vector<int8_t> w(static_cast<size_t>(n * k), 0);
  switch (v.layout()) {
    case Layout::rowmajor_s8:
    case Layout::stored_s8:
    case Layout::stored_u7_s8:
      std::memcpy(w.data(), v.data(), w.size());
      break;
    case Layout::avx2_n16k2_s16:
      load_n16k2(reinterpret_cast<const int16_t*>(v.data()), w.data(), n, k, v.k_pad());
      break;
    case Layout::avx2_n16k2_s8:
      load_n16k2(reinterpret_cast<const int8_t*>(v.data()), w.data(), n, k, v.k_pad());
      break;
    case Layout::avx2_n16k4_u8s8:
    case Layout::avx2_n16k8_u7s8: {
      constexpr int64_t NR = Avx2U8Traits::NR;
      auto* d = reinterpret_cast<const int8_t*>(v.data());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j)
          w[i * k + j] = d[((i / NR * (v.k_pad() / 4) + j / 4) * NR + i % NR) * 4 + j % 4];
      const int32_t* rp = v.row_ptr();
      const auto* e = reinterpret_cast<const int32_t*>(v.idx());
      for (int64_t i = 0; i < n; ++i)
        for (int32_t t = rp[i]; t < rp[i + 1]; ++t)
          w[i * k + (e[t] >> 8)] = static_cast<int8_t>(w[i * k + (e[t] >> 8)] + static_cast<int8_t>(e[t] & 0xFF));
      break;
    }
    case Layout::vnni_n32k4_s8: {
      constexpr int64_t NR = Avx512VnniTraits::NR;
      auto* d = reinterpret_cast<const int8_t*>(v.data());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j)
          w[i * k + j] = d[((i / NR * (v.k_pad() / 4) + j / 4) * NR + i % NR) * 4 + j % 4];
      break;
    }
    case Layout::depthwise_s16:
    case Layout::depthwise_s8: {
      for (int64_t ch = 0; ch < n; ++ch)
        for (int64_t t = 0; t < k; ++t) w[ch * k + t] = static_cast<int8_t>(depthwise_weight(v, t, ch));
      break;
    }
    case Layout::sparse_1x4_csr: {
      auto* vals = reinterpret_cast<const int8_t*>(v.data());
      auto* bk = reinterpret_cast<const int32_t*>(v.idx());
      const int32_t* rp = v.row_ptr();
      for (int64_t i = 0; i < n; ++i)
        for (int32_t b = rp[i]; b < rp[i + 1]; ++b)
          for (int q = 0; q < 4; ++q)
            if (bk[b] + q < k) w[i * k + bk[b] + q] = vals[b * 4 + q];
      break;
    }
    case Layout::sparse_2_4_s8: {
      const int64_t groups = v.k_pad() / 4;
      auto* vals = reinterpret_cast<const int8_t*>(v.data());
      const uint8_t* idx = v.idx();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t g = 0; g < groups; ++g) {
          const int q0 = idx[i * groups + g] & 3, q1 = (idx[i * groups + g] >> 2) & 3;
          if (g * 4 + q0 < k) w[i * k + g * 4 + q0] = vals[(i * groups + g) * 2];
          if (g * 4 + q1 < k) w[i * k + g * 4 + q1] = vals[(i * groups + g) * 2 + 1];
        }
      break;
    }
  }
  return w;
}

bool storable(const PackedView& v) {
  switch (v.layout()) {
    case Layout::avx2_n16k2_s16:
    case Layout::avx2_n16k2_s8:
    case Layout::avx2_n16k4_u8s8:
    case Layout::avx2_n16k8_u7s8:
    case Layout::vnni_n32k4_s8:
    case Layout::depthwise_s16:
    case Layout::depthwise_s8: return true;
    default: return false;
  }
}

namespace {

// A blob of v's kind, zero point and geometry holding row-major w in `layout`
// (for a depthwise weight: the storage form, or else its kernel layout).
std::vector<uint8_t> repack(const PackedView& v, const std::vector<int8_t>& w, Layout layout) {
  switch (v.kind()) {
    case PackedKind::conv:
      return pack_conv_u8s8(w.data(), v.n(), v.kh(), v.kw(), v.c_in(), v.a_zero_point(), layout);
    case PackedKind::gemm: return pack_gemm_u8s8(w.data(), v.n(), v.k(), v.a_zero_point(), layout);
    case PackedKind::depthwise:
      return pack_depthwise_u8s8(w.data(), v.n(), v.kh(), v.kw(), v.a_zero_point(),
                                 is_storage_layout(layout) ? Layout::stored_s8 : Layout::depthwise_s8);
    default: bad_input("repack: a sparse weight has no storage form");
  }
}

}  // namespace

std::vector<uint8_t> to_stored(const PackedView& v) {
  if (!storable(v)) bad_input("to_stored: only a dense or depthwise weight packed for a kernel has a storage form");
  const Layout stored = v.layout() == Layout::avx2_n16k8_u7s8 ? Layout::stored_u7_s8 : Layout::stored_s8;
  return repack(v, unpack_weight_rowmajor(v), stored);
}

std::vector<uint8_t> from_stored(const PackedView& v, Isa isa) {
  if (!is_storage_layout(v.layout())) bad_input("from_stored: the weight is not in a storage form");
  const Layout layout = v.layout() == Layout::stored_u7_s8 ? Layout::avx2_n16k8_u7s8 : dense_layout_for(isa);
  return repack(v, unpack_weight_rowmajor(v), layout);
}

}  // namespace compress::kernels
