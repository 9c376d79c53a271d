// Packed weights arrive from saved models, i.e. from outside: every header
// field, section and index is validated before a kernel reads the blob. Each
// case starts from a valid blob made by a compress::pack_* op, corrupts one
// thing, and calls the consuming op the way a loaded model would.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <torch/script.h>

#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "compress/kernels/packed.h"
#include "ops_test_util.h"

namespace {

namespace KN = compress::kernels;

using ops_test::call;
using ops_test::error_of;

// A valid packed weight and the op call that consumes it.
struct Sample {
  std::string what;
  at::Tensor packed;
  std::function<void(const at::Tensor&)> run;
};

std::function<void(const at::Tensor&)> linear_runner(const char* op, int64_t n, int64_t k, int a_max) {
  return [=](const at::Tensor& packed) {
    at::Tensor x = at::randint(0, a_max + 1, {3, k}, at::kByte);
    call(op, {x, packed, at::full({n}, 0.01f), c10::IValue(), int64_t{0}, false, at::kFloat, c10::IValue(), 1.0,
              int64_t{0}, int64_t{255}});
  };
}

std::function<void(const at::Tensor&)> conv_runner(int64_t c_in, int64_t c_out) {
  return [=](const at::Tensor& packed) {
    at::Tensor x = at::randint(0, 256, {1, 6, 5, c_in}, at::kByte);
    call("conv2d_int8", {x, packed, at::full({c_out}, 0.01f), c10::IValue(), std::vector<int64_t>{1, 1},
                         std::vector<int64_t>{1, 1}, std::vector<int64_t>{1, 1}, int64_t{0}, false, at::kFloat,
                         c10::IValue(), 1.0, int64_t{0}, int64_t{255}});
  };
}

KN::PackedView view(const at::Tensor& t) { return KN::PackedView(t.data_ptr<uint8_t>(), t.numel()); }

// One blob of every kind and layout the ops produce.
std::vector<Sample> samples() {
  at::manual_seed(3);
  const int64_t N = 20, K = 40;
  std::vector<Sample> s;
  const at::Tensor uniform = at::randint(-128, 128, {N, K}, at::kChar);
  at::Tensor trained = at::randint(-50, 51, {N, K}, at::kChar);
  for (int64_t i = 0; i < 5; ++i) {  // a few saturating pairs: the u8 layouts keep corrections for them
    trained[i][0] = 127;
    trained[i][1] = 120;
    trained[i][4] = -128;
    trained[i][5] = -128;
  }
  auto dense = [&](const char* what, const at::Tensor& w, const char* layout, int zp, int a_max) {
    s.push_back({what, call("pack_linear_int8", {w, int64_t{zp}, std::string(layout)}).toTensor(),
                 linear_runner("linear_int8", N, K, a_max)});
  };
  dense("rowmajor_s8", uniform, "ref", 7, 255);
  dense("avx2_n16k2_s8", uniform, "avx2", 7, 255);  // uniform bytes: too many corrections, the exact layout instead
  {  // the exact layout's s16 form, which the packer no longer writes but models saved with it still hold
    const at::Tensor w = uniform.contiguous();
    std::vector<uint8_t> blob = KN::pack_gemm_u8s8(w.data_ptr<int8_t>(), N, K, 7, KN::Layout::avx2_n16k2_s16);
    at::Tensor t = at::empty({static_cast<int64_t>(blob.size())}, at::kByte);
    std::memcpy(t.data_ptr<uint8_t>(), blob.data(), blob.size());
    s.push_back({"avx2_n16k2_s16", t, linear_runner("linear_int8", N, K, 255)});
  }
  dense("avx2_n16k4_u8s8", trained, "avx2", 7, 255);
  dense("avx2_n16k8_u7s8", trained, "avx2_u7", 7, 127);
  dense("vnni_n32k4_s8", uniform, "avx512vnni", 7, 255);
  const at::Tensor conv_w = at::randint(-128, 128, {5, 3, 3, 3}, at::kChar);
  s.push_back({"conv ref", call("pack_conv2d_int8", {conv_w, int64_t{9}, int64_t{1}, std::string("ref")}).toTensor(),
               conv_runner(3, 5)});
  s.push_back({"conv avx2", call("pack_conv2d_int8", {conv_w, int64_t{9}, int64_t{1}, std::string("avx2")}).toTensor(),
               conv_runner(3, 5)});
  const at::Tensor dw_w = at::randint(-128, 128, {6, 1, 3, 3}, at::kChar);
  s.push_back({"depthwise", call("pack_conv2d_int8", {dw_w, int64_t{9}, int64_t{6}, std::string("auto")}).toTensor(),
               conv_runner(6, 6)});
  // The storage form save_module writes, of a dense, a convolution and a
  // depthwise weight (16 channels: its data must outgrow the 64 bytes that
  // one field case moves data_offset back by).
  auto stored = [&](const std::string& of) {
    for (const Sample& sample : s)
      if (sample.what == of) return call("packed_weight_for_storage", {sample.packed}).toTensor();
    throw std::logic_error("no sample " + of);
  };
  s.push_back({"stored dense", stored("vnni_n32k4_s8"), linear_runner("linear_int8", N, K, 255)});
  s.push_back({"stored conv", stored("conv avx2"), conv_runner(3, 5)});
  s.push_back({"stored u7", stored("avx2_n16k8_u7s8"), linear_runner("linear_int8", N, K, 127)});
  const at::Tensor dw16 = at::randint(-128, 128, {16, 1, 3, 3}, at::kChar);
  s.push_back({"stored depthwise",
               call("packed_weight_for_storage",
                    {call("pack_conv2d_int8", {dw16, int64_t{9}, int64_t{16}, std::string("auto")}).toTensor()})
                   .toTensor(),
               conv_runner(16, 16)});
  at::Tensor mask = at::zeros({N, K}, at::kByte);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = (i % 3) * 4; j < K; j += 12) mask[i][j] = 1, mask[i][j + 2] = 1;
  for (const char* format : {"1x4", "2:4"})
    s.push_back({std::string("sparse ") + format,
                 call("pack_linear_int8_sparse", {uniform, mask, int64_t{4}, std::string(format)}).toTensor(),
                 linear_runner("linear_int8_sparse", N, K, 255)});
  return s;
}

int64_t* header(at::Tensor& t) { return reinterpret_cast<int64_t*>(t.data_ptr<uint8_t>()); }

// The corruption of one field that its own check must catch.
struct FieldCase {
  int field;
  const char* name;
  std::function<int64_t(int64_t old, const KN::PackedView& v)> bad;
};

const std::vector<FieldCase>& field_cases() {
  static const std::vector<FieldCase> cases = {
      {KN::kMagic, "magic", [](int64_t, const KN::PackedView&) { return int64_t{0}; }},
      {KN::kVersion, "version", [](int64_t, const KN::PackedView&) { return int64_t{2}; }},
      {KN::kKind, "kind", [](int64_t, const KN::PackedView&) { return int64_t{9}; }},
      {KN::kLayout, "layout",  // past the last
       [](int64_t, const KN::PackedView&) { return static_cast<int64_t>(KN::Layout::stored_u7_s8) + 1; }},
      // A real layout of another kind of weight.
      {KN::kLayout, "layout",
       [](int64_t, const KN::PackedView& v) {
         return static_cast<int64_t>(v.kind() == KN::PackedKind::depthwise ? KN::Layout::rowmajor_s8
                                                                         : KN::Layout::depthwise_s16);
       }},
      {KN::kN, "n", [](int64_t, const KN::PackedView&) { return int64_t{0}; }},
      {KN::kN, "n", [](int64_t, const KN::PackedView&) { return int64_t{1} << 40; }},
      {KN::kK, "k", [](int64_t, const KN::PackedView&) { return int64_t{0}; }},  // was a division by zero
      {KN::kK, "k", [](int64_t, const KN::PackedView&) { return int64_t{32769}; }},
      {KN::kNPad, "n_pad", [](int64_t old, const KN::PackedView&) { return old + 1; }},
      {KN::kKPad, "k_pad", [](int64_t old, const KN::PackedView&) { return old - 1; }},
      {KN::kAZeroPoint, "a_zero_point", [](int64_t, const KN::PackedView&) { return int64_t{256}; }},
      {KN::kCompOffset, "comp_offset", [](int64_t old, const KN::PackedView&) { return old + 8; }},
      {KN::kDataOffset, "data_offset", [](int64_t, const KN::PackedView&) { return int64_t{1} << 40; }},
      {KN::kDataOffset, "data_offset", [](int64_t, const KN::PackedView& v) { return v.bytes() - 64; }},
      {KN::kDataBytes, "data_bytes", [](int64_t old, const KN::PackedView&) { return old + 1; }},
      {KN::kIdxOffset, "idx_offset", [](int64_t, const KN::PackedView&) { return int64_t{-64}; }},
      {KN::kIdxBytes, "idx_bytes", [](int64_t old, const KN::PackedView&) { return old + 1; }},
      {KN::kRowPtrOffset, "row_ptr_offset", [](int64_t, const KN::PackedView&) { return int64_t{1} << 40; }},
      {KN::kNnz, "nnz", [](int64_t, const KN::PackedView&) { return int64_t{-1}; }},
      {KN::kKh, "kh", [](int64_t, const KN::PackedView&) { return int64_t{0}; }},
      {KN::kKw, "kw", [](int64_t, const KN::PackedView&) { return int64_t{0}; }},
      {KN::kCIn, "c_in", [](int64_t, const KN::PackedView&) { return int64_t{0}; }},
      {KN::kGroups, "groups", [](int64_t, const KN::PackedView&) { return int64_t{2}; }},
      {KN::kTotalBytes, "total_bytes", [](int64_t old, const KN::PackedView&) { return old + 64; }},
  };
  return cases;
}

}  // namespace

TEST_CASE("every header field of a packed weight is validated by the op that reads it", "[ops][packed][errors]") {
  for (Sample& s : samples()) {
    INFO(s.what);
    REQUIRE(error_of([&] { s.run(s.packed); }).empty());  // the untouched blob runs
    for (const FieldCase& fc : field_cases()) {
      at::Tensor bad = s.packed.clone();
      const KN::PackedView v = view(s.packed);
      header(bad)[fc.field] = fc.bad(header(bad)[fc.field], v);
      INFO("field " << fc.name << " = " << header(bad)[fc.field]);
      const std::string err = error_of([&] { s.run(bad); });
      CHECK_THAT(err, Catch::Contains("packed weight: field '" + std::string(fc.name) + "'"));
      CHECK(err.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("a 7-bit packed weight refuses a zero point above 127", "[ops][packed][errors]") {
  int checked = 0;
  for (Sample& s : samples()) {
    if (!KN::layout_needs_7bit_activations(view(s.packed).layout())) continue;  // the 7-bit layout and its storage form
    ++checked;
    at::Tensor bad = s.packed.clone();
    header(bad)[KN::kAZeroPoint] = 128;
    CHECK_THAT(error_of([&] { s.run(bad); }), Catch::Contains("field 'a_zero_point' is 128, outside 0..127"));
  }
  CHECK(checked == 2);
}

// Sections hold the indices the kernels follow: row pointers, correction
// entries, sparse block starts, 2:4 positions, and the compensation.
TEST_CASE("packed weight sections are validated: row pointers, indices, compensation", "[ops][packed][errors]") {
  int checked_rowptr = 0, checked_idx = 0;
  for (Sample& s : samples()) {
    INFO(s.what);
    const KN::PackedView v = view(s.packed);
    auto corrupt = [&](int64_t section_field, int64_t byte_offset, auto value) {
      at::Tensor bad = s.packed.clone();
      std::memcpy(bad.data_ptr<uint8_t>() + header(bad)[section_field] + byte_offset, &value, sizeof(value));
      return error_of([&] { s.run(bad); });
    };
    if (!KN::is_storage_layout(v.layout()))  // the storage forms have no compensation
      CHECK_THAT(corrupt(KN::kCompOffset, 4, std::numeric_limits<int32_t>::max()),
                 Catch::Contains("packed weight: section 'comp': compensation of channel 1"));
    const bool has_row_ptr = v.layout() == KN::Layout::avx2_n16k4_u8s8 || v.layout() == KN::Layout::avx2_n16k8_u7s8 ||
                             v.layout() == KN::Layout::sparse_1x4_csr;
    if (has_row_ptr) {
      ++checked_rowptr;
      REQUIRE(v.nnz() > 0);
      CHECK_THAT(corrupt(KN::kRowPtrOffset, 0, int32_t{1}), Catch::Contains("section 'row_ptr': row_ptr[0] is 1"));
      // A row that ends before it starts, then one that claims every entry.
      CHECK_THAT(corrupt(KN::kRowPtrOffset, 4 * v.n() / 2, int32_t{-3}), Catch::Contains("section 'row_ptr'"));
      CHECK_THAT(corrupt(KN::kRowPtrOffset, 4, static_cast<int32_t>(v.nnz() + 1)),
                 Catch::Contains("section 'row_ptr'"));
      CHECK_THAT(corrupt(KN::kRowPtrOffset, 4 * v.n(), static_cast<int32_t>(v.nnz() + 1)),
                 Catch::Contains("section 'row_ptr': row_ptr[n]"));
    }
    if (v.layout() == KN::Layout::avx2_n16k4_u8s8 || v.layout() == KN::Layout::avx2_n16k8_u7s8) {
      ++checked_idx;
      CHECK_THAT(corrupt(KN::kIdxOffset, 0, static_cast<int32_t>(v.k() << 8)),
                 Catch::Contains("section 'idx': correction 0 names k = 40"));
      CHECK_THAT(corrupt(KN::kIdxOffset, 0, int32_t{-1}), Catch::Contains("section 'idx': correction 0"));
    }
    if (v.layout() == KN::Layout::sparse_1x4_csr) {
      ++checked_idx;
      CHECK_THAT(corrupt(KN::kIdxOffset, 0, static_cast<int32_t>(v.k_pad())), Catch::Contains("section 'idx': block 0"));
      CHECK_THAT(corrupt(KN::kIdxOffset, 4, int32_t{2}), Catch::Contains("section 'idx': block 1 starts at k = 2"));
      CHECK_THAT(corrupt(KN::kIdxOffset, 0, int32_t{-4}), Catch::Contains("section 'idx': block 0 starts at k = -4"));
    }
    if (v.layout() == KN::Layout::sparse_2_4_s8) {
      ++checked_idx;
      CHECK_THAT(corrupt(KN::kIdxOffset, 3, uint8_t{0x05}), Catch::Contains("section 'idx': 2:4 index byte 3 is 5"));
      CHECK_THAT(corrupt(KN::kIdxOffset, 0, uint8_t{0xFF}), Catch::Contains("section 'idx': 2:4 index byte 0"));
    }
  }
  CHECK(checked_rowptr == 3);
  CHECK(checked_idx == 4);
}

TEST_CASE("a packed weight that does not start 8-byte aligned is refused", "[ops][packed][errors]") {
  Sample s = samples().front();
  at::Tensor storage = at::zeros({s.packed.numel() + 1}, at::kByte);
  storage.narrow(0, 1, s.packed.numel()).copy_(s.packed);
  CHECK_THAT(error_of([&] { s.run(storage.narrow(0, 1, s.packed.numel())); }), Catch::Contains("8-byte aligned"));
}

// Every field set to values around and far from its own: the op either runs
// (the value was legal, e.g. another zero point) or refuses with one line;
// never a crash (under the sanitizer build, never an out-of-bounds access).
TEST_CASE("packed weight header fields set to arbitrary values never crash an op", "[ops][packed][errors]") {
  const int64_t values[] = {0, 1, -1, 63, 64, 255, 256, 1 << 20, int64_t{1} << 40,
                            std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
  int refused = 0, ran = 0;
  for (Sample& s : samples())
    for (int f = 0; f < KN::kHeaderFields; ++f)
      for (int64_t delta : {int64_t{0}, int64_t{1}})
        for (int64_t value : values) {
          at::Tensor bad = s.packed.clone();
          header(bad)[f] = delta ? header(bad)[f] + value % 4096 : value;
          const std::string err = error_of([&] { s.run(bad); });
          if (err.empty()) {
            ++ran;
            continue;
          }
          ++refused;
          INFO(s.what << " field " << f << " = " << header(bad)[f]);
          CHECK_THAT(err, Catch::StartsWith("compress::"));
          CHECK(err.find('\n') == std::string::npos);
        }
  CHECK(refused > 0);
  CHECK(ran > 0);
}
