// conv2d_u8s8 (NHWC): 1x1 GEMM path, im2col path and depthwise kernel, on each
// ISA, against a naive direct convolution where padding is real zero.
#include <catch2/catch.hpp>

#include "compress/kernels/conv.h"
#include "compress/kernels/packed.h"
#include "kernel_test_util.h"

using namespace compress::kernels;

namespace {

struct ConvCase {
  int64_t batch, h, w, c_in, c_out, kh, kw, stride, pad, dil;
  bool depthwise;
  OutType out;
  bool relu, residual;
  int64_t dil_h = 0;  // the height's dilation when not `dil`
};

// Activations and their zero point in 0..a_max (127 for the 7-bit layout).
void check_conv(const ConvCase& c, Isa isa, Layout layout, std::mt19937& g, int a_max, Layout dw_layout) {
  const int64_t dil_h = c.dil_h ? c.dil_h : c.dil;
  const int64_t oh = conv_output_size(c.h, c.kh, c.stride, c.pad, dil_h);
  const int64_t ow = conv_output_size(c.w, c.kw, c.stride, c.pad, c.dil);
  const int64_t co = c.depthwise ? c.c_in : c.c_out;
  const int64_t kper = c.depthwise ? c.kh * c.kw : c.kh * c.kw * c.c_in;
  const int32_t a_zp = static_cast<int32_t>(g() % (a_max + 1));
  auto x = kt::random_u8(g, c.batch * c.h * c.w * c.c_in, 0, a_max);
  auto w = kt::random_s8(g, co * kper);
  const float span = static_cast<float>(kper) * 128.f * 255.f;
  auto scale = kt::random_f(g, co, 0.5f * 255.f / span, 4.f * 255.f / span);
  auto bias = kt::random_f(g, co, -20.f, 20.f);
  Epilogue ep;
  ep.scale = scale.data();
  ep.bias = bias.data();
  ep.out = c.out;
  ep.relu = c.relu;
  ep.out_zero_point = c.out == OutType::u8 ? 100 : 0;
  const int64_t M = c.batch * oh * ow;
  std::vector<uint8_t> residual;
  if (c.residual) {
    residual = kt::random_u8(g, M * co * kt::out_bytes(c.out), 0, c.out == OutType::f32 ? 60 : 255);
    ep.residual = residual.data();
    ep.ld_residual = co;
    ep.residual_scale = 1.25f;
    ep.residual_zero_point = c.out == OutType::f32 ? 0 : 7;
  }
  std::vector<uint8_t> expect(M * co * kt::out_bytes(c.out)), got(expect.size(), 0xEE);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t xo = 0; xo < ow; ++xo)
        for (int64_t o = 0; o < co; ++o) {
          int64_t acc = 0;
          for (int64_t i = 0; i < c.kh; ++i)
            for (int64_t j = 0; j < c.kw; ++j) {
              const int64_t ih = y * c.stride - c.pad + i * dil_h, iw = xo * c.stride - c.pad + j * c.dil;
              if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;  // padding is real zero
              const uint8_t* px = x.data() + ((b * c.h + ih) * c.w + iw) * c.c_in;
              if (c.depthwise) {
                acc += (px[o] - a_zp) * static_cast<int64_t>(w[o * kper + i * c.kw + j]);
              } else {
                for (int64_t ci = 0; ci < c.c_in; ++ci)
                  acc += (px[ci] - a_zp) * static_cast<int64_t>(w[o * kper + (i * c.kw + j) * c.c_in + ci]);
              }
            }
          kt::naive_epilogue(acc, (b * oh + y) * ow + xo, o, ep, expect.data(), co);
        }
  auto blob = c.depthwise ? pack_depthwise_u8s8(w.data(), c.c_in, c.kh, c.kw, a_zp, dw_layout)
                          : pack_conv_u8s8(w.data(), c.c_out, c.kh, c.kw, c.c_in, a_zp, layout, 1.0);
  PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  REQUIRE(v.layout() == (c.depthwise ? dw_layout : layout));
  ConvGeometry geo;
  geo.batch = c.batch; geo.height = c.h; geo.width = c.w;
  geo.stride_h = geo.stride_w = c.stride;
  geo.pad_h = geo.pad_w = c.pad;
  geo.dil_h = dil_h;
  geo.dil_w = c.dil;
  conv2d_u8s8(x.data(), geo, v, got.data(), ep, std_threads(2), isa);
  INFO("isa=" << isa_name(isa) << " layout=" << static_cast<int>(layout) << " dw=" << c.depthwise << " in=" << c.batch << "x" << c.h << "x" << c.w << "x"
               << c.c_in << " out_c=" << co << " k=" << c.kh << "x" << c.kw << " s=" << c.stride << " p=" << c.pad
               << " d=" << dil_h << "," << c.dil << " out=" << static_cast<int>(c.out) << " relu=" << c.relu
               << " residual=" << c.residual);
  CHECK(kt::first_mismatch(got, expect, c.out) == -1);
}

// Depthwise cases pack `dw_layout`; the others `layout`.
void run_conv_cases(Isa isa, Layout layout, int a_max = 255, Layout dw_layout = Layout::depthwise_s8) {
  std::mt19937 g(99);
  const ConvCase cases[] = {
      {2, 5, 6, 19, 21, 1, 1, 1, 0, 1, false, OutType::u8, true, true},    // 1x1: GEMM on the input
      {1, 7, 7, 8, 33, 1, 1, 2, 0, 1, false, OutType::s8, false, false},   // 1x1 stride 2: im2col
      {2, 9, 8, 3, 17, 3, 3, 1, 1, 1, false, OutType::u8, false, true},    // 3x3 pad 1
      {1, 11, 10, 5, 16, 3, 3, 2, 1, 1, false, OutType::f32, true, false}, // 3x3 stride 2
      {1, 12, 12, 4, 7, 5, 5, 1, 2, 2, false, OutType::u8, true, false},   // 5x5 dilation 2
      {3, 15, 13, 3, 9, 7, 7, 2, 3, 1, false, OutType::f32, false, true},  // 7x7 stride 2 (stem)
      // im2col window rows copied as one run of kw * C bytes: 6, 18 and 120 bytes
      {2, 7, 8, 2, 10, 3, 3, 1, 0, 1, false, OutType::u8, false, false},
      {1, 9, 11, 6, 20, 3, 3, 2, 1, 1, false, OutType::s8, true, false},
      {1, 8, 9, 40, 12, 3, 3, 1, 1, 1, false, OutType::u8, false, true},
      {2, 6, 7, 1, 0, 3, 3, 1, 1, 1, true, OutType::u8, true, false},      // depthwise C = 1
      {1, 9, 9, 15, 0, 3, 3, 2, 1, 1, true, OutType::s8, false, true},
      {2, 8, 8, 16, 0, 3, 3, 1, 1, 1, true, OutType::u8, false, true},
      {1, 7, 9, 17, 0, 3, 3, 1, 0, 1, true, OutType::f32, true, false},
      {1, 10, 10, 40, 0, 5, 5, 2, 2, 1, true, OutType::u8, true, false},
      {1, 6, 6, 33, 0, 3, 3, 1, 2, 2, true, OutType::u8, false, false},
      // 32-channel blocks (the AVX-512 kernel): one whole block, a block and
      // a half, two and exactly 16 more, two and 17 more
      {1, 5, 7, 32, 0, 3, 3, 1, 1, 1, true, OutType::u8, true, true},
      {2, 6, 5, 48, 0, 3, 3, 2, 1, 1, true, OutType::f32, false, true},
      {1, 4, 9, 80, 0, 3, 3, 1, 1, 1, true, OutType::s8, true, false},
      {1, 5, 5, 81, 0, 3, 3, 1, 1, 1, true, OutType::u8, false, true},
      // rows wide enough for strips of interior pixels: stride 2, dilation 2
      {1, 9, 21, 40, 0, 3, 3, 2, 1, 1, true, OutType::u8, true, true},
      {1, 7, 16, 24, 0, 3, 3, 1, 2, 2, true, OutType::f32, false, true},
      {2, 5, 19, 48, 0, 3, 3, 1, 1, 1, true, OutType::u8, true, false},  // 17 interior pixels a row: 8 + 8 + 1
      // inputs over 2 MiB: the AVX-512 kernel prefetches the next rows
      {2, 41, 40, 800, 0, 3, 3, 2, 1, 1, true, OutType::u8, false, true},
      {1, 48, 48, 1024, 0, 3, 3, 1, 1, 1, true, OutType::u8, true, false},
  };
  for (const auto& c : cases) check_conv(c, isa, layout, g, a_max, dw_layout);
}

}  // namespace

TEST_CASE("conv2d_u8s8 ref matches a direct convolution", "[kernels][conv][ref]") {
  run_conv_cases(Isa::ref, Layout::rowmajor_s8);
}

TEST_CASE("conv2d_u8s8 avx2 (im2col + gemm_u8s8s32_avx2_6x16c2_s16, dwconv_u8s8s32_avx2_16c) matches",
          "[kernels][conv][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  run_conv_cases(Isa::avx2, Layout::avx2_n16k2_s16);  // im2col chunks + gemm_u8s8s32_avx2_6x16c2_s16
  run_conv_cases(Isa::avx2, Layout::avx2_n16k2_s8);   // the same kernel reading s8-stored weights
}

TEST_CASE("depthwise weights in the older s16 layout still run, reference and avx2", "[kernels][conv]") {
  run_conv_cases(Isa::ref, Layout::rowmajor_s8, 255, Layout::depthwise_s16);
  KT_REQUIRE_ISA(Isa::avx2);
  run_conv_cases(Isa::avx2, Layout::avx2_n16k4_u8s8, 255, Layout::depthwise_s16);
}

TEST_CASE("depthwise weights in the older s16 layout still run, avx512vnni", "[kernels][conv][avx512vnni]") {
  KT_REQUIRE_ISA(Isa::avx512vnni);
  run_conv_cases(Isa::avx512vnni, Layout::vnni_n32k4_s8, 255, Layout::depthwise_s16);
}

TEST_CASE("conv2d_u8s8 avx2 (implicit im2col rows + gemm_u8s8s32_avx2_6x16c4) matches", "[kernels][conv][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  run_conv_cases(Isa::avx2, Layout::avx2_n16k4_u8s8);
}

TEST_CASE("conv2d_u8s8 avx2 7-bit activations (gemm_u8s8s32_avx2_4x16c8_u7) matches", "[kernels][conv][avx2]") {
  KT_REQUIRE_ISA(Isa::avx2);
  run_conv_cases(Isa::avx2, Layout::avx2_n16k8_u7s8, 127);
  // An input byte above 127 is refused on both the GEMM (1x1) and im2col paths.
  std::mt19937 g(3);
  auto w = kt::random_s8(g, 8 * 3 * 3 * 4, -50, 50);
  auto x = kt::random_u8(g, 1 * 5 * 5 * 4, 0, 127);
  x[57] = 200;
  std::vector<float> scale(8, 0.01f);
  std::vector<uint8_t> y(5 * 5 * 8);
  Epilogue ep;
  ep.scale = scale.data();
  ep.out = OutType::u8;
  ConvGeometry geo;
  geo.height = geo.width = 5;
  geo.pad_h = geo.pad_w = 1;
  for (int64_t k : {1, 3}) {
    auto blob = pack_conv_u8s8(w.data(), 8, k, k, 4, 0, Layout::avx2_n16k8_u7s8);
    PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
    ConvGeometry gk = geo;
    if (k == 1) gk.pad_h = gk.pad_w = 0;
    CHECK_THROWS_WITH(conv2d_u8s8(x.data(), gk, v, y.data(), ep, serial(), Isa::avx2), Catch::Contains("exceeds 127"));
  }
}

TEST_CASE("conv2d_u8s8 amx (implicit im2col rows + gemm_u8s8s32_amx_32x32) matches a direct convolution",
          "[kernels][conv][amx]") {
  KT_REQUIRE_ISA(Isa::amx);
  run_conv_cases(Isa::amx, Layout::vnni_n32k4_s8);
  // Stride 1 with c_in a multiple of 64: the direct path (A tiles read in
  // place from a padded copy of the input; rows past the output dropped).
  std::mt19937 g(123);
  const ConvCase direct[] = {
      {2, 9, 11, 64, 40, 3, 3, 1, 1, 1, false, OutType::u8, true, true},
      {1, 7, 7, 128, 70, 3, 3, 1, 1, 1, false, OutType::s8, false, false},
      {3, 6, 5, 64, 33, 3, 3, 1, 0, 1, false, OutType::f32, true, true},  // no padding
      {1, 8, 9, 64, 16, 5, 5, 1, 2, 1, false, OutType::u8, false, true},
      {2, 6, 9, 64, 24, 1, 3, 1, 1, 1, false, OutType::u8, true, false},  // 1x3 with padding on both axes
      {1, 20, 3, 192, 32, 3, 3, 1, 1, 1, false, OutType::u8, false, false},
      {1, 1, 1, 64, 8, 3, 3, 1, 1, 1, false, OutType::f32, false, false},  // one pixel, all taps but one padding
  };
  for (const auto& c : direct) check_conv(c, Isa::amx, Layout::vnni_n32k4_s8, g, 255, Layout::depthwise_s8);
  // Stride-2 stems with at most 4 channels and 7- or 8-wide kernels: the
  // space-to-depth path (a rearranged weight, cached by content; copy pixels
  // built by a permute inside the image and byte by byte at its borders).
  const ConvCase stems[] = {
      {2, 24, 21, 3, 40, 7, 7, 2, 3, 1, false, OutType::u8, true, false},  // resnet's stem, odd width
      {2, 24, 21, 3, 40, 7, 7, 2, 3, 1, false, OutType::u8, true, false},  // same shape, other weights
      {1, 19, 30, 3, 64, 7, 7, 2, 2, 1, false, OutType::s8, false, true},
      {3, 9, 16, 1, 17, 7, 7, 2, 3, 1, false, OutType::f32, true, true},   // one channel
      {1, 13, 12, 4, 33, 8, 8, 2, 0, 1, false, OutType::u8, false, false}, // 8x8, four channels, no padding
      {1, 16, 18, 2, 8, 5, 7, 2, 1, 1, false, OutType::u8, true, false},   // 5 rows: 3 k-blocks
      {2, 7, 7, 3, 64, 7, 7, 2, 3, 1, false, OutType::u8, false, true},    // every window touches the border
  };
  for (const auto& c : stems) check_conv(c, Isa::amx, Layout::vnni_n32k4_s8, g, 255, Layout::depthwise_s8);
  // Batches of 8 groups and more (a group: as many images as fit a 512 KB
  // copy; 7 of these): the threads take whole groups, each output and
  // residual block at its group's offset.
  const ConvCase many_groups[] = {
      {56, 32, 32, 64, 8, 3, 3, 1, 1, 1, false, OutType::u8, true, true},
      {56, 64, 64, 3, 8, 7, 7, 2, 3, 1, false, OutType::f32, false, true},
  };
  for (const auto& c : many_groups) check_conv(c, Isa::amx, Layout::vnni_n32k4_s8, g, 255, Layout::depthwise_s8);
}

TEST_CASE("conv2d_u8s8 avx512vnni matches a direct convolution", "[kernels][conv][avx512vnni]") {
  KT_REQUIRE_ISA(Isa::avx512vnni);
  run_conv_cases(Isa::avx512vnni, Layout::vnni_n32k4_s8);
  // The direct path (window quads broadcast from a padded copy of the input,
  // a rearranged weight cached by content; strips of 8 pixels across rows and
  // images): up to 4 input channels with undilated rows, and stride-1 layers
  // whose kernel rows are whole quads, K <= 576.
  std::mt19937 g(321);
  const ConvCase direct[] = {
      {4, 28, 28, 1, 32, 3, 3, 1, 1, 1, false, OutType::u8, true, false},  // the zoo's stem
      {4, 28, 28, 1, 32, 3, 3, 1, 1, 1, false, OutType::u8, true, false},  // same shape, other weights
      {3, 17, 15, 3, 32, 3, 3, 2, 1, 1, false, OutType::u8, true, true},   // mobilenet's stem, odd sizes
      {2, 23, 21, 3, 64, 7, 7, 2, 3, 1, false, OutType::s8, false, true},  // resnet's stem: 6 quads a row
      {1, 9, 10, 2, 70, 3, 3, 1, 0, 1, false, OutType::f32, true, true},   // 3 panels, the last partial
      {2, 11, 6, 4, 17, 5, 3, 1, 2, 1, false, OutType::u8, false, false},  // pad wider than the image's edge
      {1, 7, 9, 3, 16, 1, 1, 2, 0, 1, false, OutType::u8, true, true},     // 1x1 stride 2: one quad
      {1, 3, 3, 1, 8, 3, 3, 1, 1, 1, false, OutType::f32, false, false},   // 9 pixels: a strip and one
      {5, 13, 13, 3, 24, 11, 11, 4, 2, 1, false, OutType::u8, true, false}, // AlexNet-like: 99 quads
      {2, 12, 10, 1, 33, 3, 3, 1, 2, 1, false, OutType::u8, false, true, 2},  // rows dilated, taps not
      {2, 14, 14, 32, 64, 3, 3, 1, 1, 1, false, OutType::u8, true, true},   // the zoo cnn's second layer
      {1, 9, 7, 64, 40, 3, 3, 1, 1, 1, false, OutType::s8, false, false},   // K = 576, the largest taken
      {1, 6, 5, 8, 33, 5, 5, 1, 2, 1, false, OutType::f32, true, true},     // 10 quads a row
      {2, 8, 9, 12, 20, 3, 3, 1, 1, 2, false, OutType::u8, true, false},    // dilated: im2col rows
  };
  for (const auto& c : direct) check_conv(c, Isa::avx512vnni, Layout::vnni_n32k4_s8, g, 255, Layout::depthwise_s8);
}

TEST_CASE("conv2d_u8s8 computes with a weight in the storage form as with its packing", "[kernels][conv][packing]") {
  std::mt19937 g(33);
  ConvGeometry geo;
  geo.batch = 2;
  geo.height = 7;
  geo.width = 6;
  geo.pad_h = geo.pad_w = 1;
  const int64_t c_in = 6, c_out = 11;
  const std::vector<uint8_t> x = kt::random_u8(g, geo.batch * geo.height * geo.width * c_in);
  const std::vector<int8_t> w = kt::random_s8(g, c_out * 9 * c_in, -50, 50), dw = kt::random_s8(g, c_in * 9);
  for (const auto& [packed, n] :
       {std::make_pair(pack_conv_u8s8(w.data(), c_out, 3, 3, c_in, 4, dense_layout_for(best_isa())), c_out),
        std::make_pair(pack_depthwise_u8s8(dw.data(), c_in, 3, 3, 4), c_in)}) {
    const PackedView p(packed.data(), static_cast<int64_t>(packed.size()));
    INFO("kind " << static_cast<int>(p.kind()));
    const std::vector<uint8_t> stored = to_stored(p);
    const PackedView s(stored.data(), static_cast<int64_t>(stored.size()));
    const std::vector<float> scale = kt::random_f(g, n, 0.01f, 0.1f);
    Epilogue ep;
    ep.scale = scale.data();
    ep.out = OutType::f32;
    std::vector<float> a(geo.batch * geo.height * geo.width * n), b(a.size());
    conv2d_u8s8(x.data(), geo, p, a.data(), ep, serial());
    conv2d_u8s8(x.data(), geo, s, b.data(), ep, serial());
    CHECK(a == b);
  }
}
