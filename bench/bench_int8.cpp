// compress_bench_int8: our INT8 kernels side by side with oneDNN (u8s8 matmul
// and convolution, same thread count) and OpenBLAS sgemm, interleaved in one
// process (ours, oneDNN, OpenBLAS, ours, ...), median of the repeats.
//   compress_bench_int8 [--threads N] [--reps R] [--json PATH] [--smoke] [--only SECTION] [--filter TEXT]
// Sections: peak, exact, square, model, sparse, sparse_isa, sparse_conv. Prints Markdown tables.
// --filter keeps only the model layers whose name contains TEXT ("stem", "dw", "fc").
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/kernels/conv.h"
#include "compress/kernels/gemm.h"
#include "compress/kernels/isa.h"
#include "compress/kernels/packed.h"
#include "compress/kernels/sparse.h"

#if COMPRESS_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace bench {
double measure_clock_ghz();
double measure_madd_macs_per_s();
double measure_maddubs_macs_per_s();
double measure_u7_macs_per_s();
double measure_amx_macs_per_s();   // peak_amx.cpp; only where cpu_supports(Isa::amx)
double measure_vnni_macs_per_s();  // peak_vnni.cpp; only where cpu_supports(Isa::avx512vnni)
}  // namespace bench

namespace {

namespace K = compress::kernels;
using json = nlohmann::json;

int g_threads = 2;
int g_reps = 5;
double g_target_ms = 40;  // time per measured batch of calls

// Our kernels run on the same OpenMP runtime oneDNN uses here (libgomp), with
// a static split like at::parallel_for's.
K::ParallelFor omp_parallel() {
  return [](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    const int t = static_cast<int>(std::min<int64_t>(g_threads, n));
#pragma omp parallel num_threads(t)
    {
      const int id = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t chunk = (n + nt - 1) / nt, b = id * chunk, e = std::min(n, b + chunk);
      if (b < e) body(b, e);
    }
  };
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One contender: a name and a call; empty call = not available.
struct Contender {
  std::string name;
  std::function<void()> run;
  int iters = 1;
  std::vector<double> ms;
  double median() const {
    if (ms.empty()) return NAN;
    auto v = ms;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  }
};

// Interleaves the contenders: each repeat times every contender once.
void measure(std::vector<Contender>& cs) {
  for (auto& c : cs) {
    if (!c.run) continue;
    c.run();  // warm-up: packing caches, primitive creation, page faults
    const double t0 = now_ms();
    c.run();
    const double one = std::max(1e-3, now_ms() - t0);
    c.iters = static_cast<int>(std::clamp(g_target_ms / one, 1.0, 2000.0));
  }
  for (int r = 0; r < g_reps; ++r)
    for (auto& c : cs) {
      if (!c.run) continue;
      // Let the previous library's spinning worker threads go idle first.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      const double t0 = now_ms();
      for (int i = 0; i < c.iters; ++i) c.run();
      c.ms.push_back((now_ms() - t0) / c.iters);
    }
}

// ---- OpenBLAS (dlopen: only the runtime package is needed) ----
using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
sgemm_fn g_sgemm = nullptr;
void load_openblas() {
  // Short spin after each call, so idle OpenBLAS threads do not steal the
  // cores from the contender timed next (exponent: 2^4 cycles).
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
  void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  g_sgemm = reinterpret_cast<sgemm_fn>(dlsym(h, "cblas_sgemm"));
  auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads"));
  if (set_threads) set_threads(g_threads);
}

std::mt19937 g_rng(42);
// Activations 0..127 for every contender: the 7-bit range PyTorch's x86
// quantization (reduce_range) produces, which our u7 layout takes; no
// contender's speed depends on the values.
std::vector<uint8_t> rand_u8(int64_t n) {
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(g_rng() & 0x7F);
  return v;
}
// Weights as a per-channel symmetric quantizer leaves trained weights: roughly
// normal, max |w| = 127 at about 4 sigma. (Uniform random bytes would be an
// unrealistic worst case for the AVX2 u8 path's pair clipping; its tests cover it.)
std::vector<int8_t> rand_s8(int64_t n) {
  std::normal_distribution<float> d(0.f, 127.f / 4.f);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(std::clamp(std::nearbyint(d(g_rng)), -127.f, 127.f));
  return v;
}

#if COMPRESS_HAVE_DNNL
dnnl::engine& eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& strm() {
  static dnnl::stream s(eng());
  return s;
}
#endif

// Packed weights at a 64-byte aligned address, as the ops hold them (a torch
// tensor's storage): from a std::vector's 16-byte alignment every AMX B-tile
// row straddles two cache lines, which cost ours about a quarter of a layer's
// time (at batch 1, on the 3x3 64-channel layer) that no model pays.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64)); }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const Aligned64&) const { return true; }
  bool operator!=(const Aligned64&) const { return false; }
};
using Blob = std::vector<uint8_t, Aligned64<uint8_t>>;
Blob aligned(const std::vector<uint8_t>& v) { return Blob(v.begin(), v.end()); }

// A GEMM problem C[M][N] = A[M][K] * W[N][K]^T, u8 output with per-channel scale and bias.
struct GemmProblem {
  int64_t M, N, K;
  std::vector<uint8_t> A, C;
  std::vector<int8_t> W;
  std::vector<float> scale, bias, Af, Wf, Cf;
  Blob packed, packed7;  // for u8 activations; for 7-bit ones
  GemmProblem(int64_t m, int64_t n, int64_t k, bool want_float)
      : M(m), N(n), K(k), A(rand_u8(m * k)), C(m * n), W(rand_s8(n * k)), scale(n, 1e-4f), bias(n, 3.f) {
    packed = aligned(K::pack_gemm_u8s8(W.data(), N, K, 0, K::dense_layout_for(K::active_isa())));
    packed7 = aligned(K::pack_gemm_u8s8(W.data(), N, K, 0, K::dense_layout_for(K::active_isa(), true)));
    if (want_float) {
      Af.assign(A.begin(), A.end());
      Wf.assign(W.begin(), W.end());
      Cf.assign(M * N, 0.f);
    }
  }
  K::Epilogue ep() const {
    K::Epilogue e;
    e.scale = scale.data();
    e.bias = bias.data();
    e.out = K::OutType::u8;
    return e;
  }
};

std::function<void()> ours_gemm(GemmProblem& p, const Blob& packed) {
  return [&p, &packed] {
    K::PackedView v(packed.data(), static_cast<int64_t>(packed.size()));
    K::gemm_u8s8s32(p.M, p.A.data(), p.K, v, p.C.data(), p.N, p.ep(), omp_parallel());
  };
}

std::function<void()> openblas_gemm(GemmProblem& p) {
  if (!g_sgemm) return {};
  return [&p] {
    g_sgemm(101, 111, 112, static_cast<int>(p.M), static_cast<int>(p.N), static_cast<int>(p.K), 1.f, p.Af.data(),
            static_cast<int>(p.K), p.Wf.data(), static_cast<int>(p.K), 0.f, p.Cf.data(), static_cast<int>(p.N));
  };
}

#if COMPRESS_HAVE_DNNL
struct DnnlMatmul {
  dnnl::matmul prim;
  dnnl::memory a, w, b, c;
};
std::function<void()> onednn_gemm(GemmProblem& p, std::shared_ptr<DnnlMatmul>& keep) {
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  keep = std::make_shared<DnnlMatmul>();
  memory::desc a_md({p.M, p.K}, dt::u8, tag::ab), w_any({p.K, p.N}, dt::s8, tag::any),
      w_user({p.K, p.N}, dt::s8, tag::ba), b_md({1, p.N}, dt::f32, tag::ab), c_md({p.M, p.N}, dt::u8, tag::ab);
  primitive_attr attr;
  attr.set_output_scales(1 << 1, p.scale);
  matmul::primitive_desc pd(matmul::desc(a_md, w_any, b_md, c_md), attr, eng());
  keep->prim = matmul(pd);
  keep->a = memory(a_md, eng(), p.A.data());
  memory wu(w_user, eng(), p.W.data());
  keep->w = memory(pd.weights_desc(), eng());
  reorder(wu, keep->w).execute(strm(), wu, keep->w);  // packed once, like ours
  keep->b = memory(b_md, eng(), p.bias.data());
  keep->c = memory(c_md, eng(), p.C.data());
  strm().wait();
  auto k = keep;
  return [k] {
    k->prim.execute(strm(), {{DNNL_ARG_SRC, k->a}, {DNNL_ARG_WEIGHTS, k->w}, {DNNL_ARG_BIAS, k->b}, {DNNL_ARG_DST, k->c}});
    strm().wait();
  };
}
#endif

// Exactness on inputs where u8*s8 pair sums exceed s16 (255*127*2 = 64770):
// every output should be K * 255 * 127. Reports what oneDNN and we return.
json exactness_check() {
  const int64_t M = 8, N = 16, K = 64;
  std::vector<uint8_t> A(M * K, 255);
  std::vector<int8_t> W(N * K, 127);
  const double exact = static_cast<double>(K) * 255 * 127;
  json j;
  j["exact"] = exact;
  std::vector<float> ones(N, 1.f), ours(M * N);
  auto blob = K::pack_gemm_u8s8(W.data(), N, K, 0, K::dense_layout_for(K::active_isa()), 1.0);
  K::PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
  K::Epilogue ep;
  ep.scale = ones.data();
  K::gemm_u8s8s32(M, A.data(), K, v, ours.data(), N, ep, K::serial());
  j["ours"] = ours[0];
#if COMPRESS_HAVE_DNNL
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  std::vector<int32_t> out(M * N, 0);
  memory::desc a_md({M, K}, dt::u8, tag::ab), w_md({K, N}, dt::s8, tag::ba), c_md({M, N}, dt::s32, tag::ab);
  matmul::primitive_desc pd(matmul::desc(a_md, w_md, c_md), eng());
  memory a(a_md, eng(), A.data()), w(w_md, eng(), W.data()), c(c_md, eng(), out.data());
  matmul(pd).execute(strm(), {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, c}});
  strm().wait();
  j["onednn"] = out[0];
#endif
  return j;
}

struct Row {
  std::string section, name;
  double ops;  // 2 * MACs
  std::vector<std::pair<std::string, double>> ms;
};
std::vector<Row> g_rows;

bool is_ours(const std::string& name) { return name.rfind("ours", 0) == 0; }

// Contenders named "ours..." are our variants (u8 layout, u7 layout); the
// others are compared with the fastest of ours that ran, and the last column
// is what the 7-bit layout gains over the u8 one.
void record(const std::string& section, const std::string& name, double ops, const std::vector<Contender>& cs) {
  Row r{section, name, ops, {}};
  for (const auto& c : cs) r.ms.push_back({c.name, c.median()});
  g_rows.push_back(r);
  std::printf("| %-34s |", name.c_str());
  double best = NAN;
  for (const auto& c : cs) {
    const double m = c.median();
    if (std::isnan(m)) std::printf("      n/a |");
    else std::printf(" %8.3f |", m);
    if (is_ours(c.name) && !std::isnan(m) && !(m >= best)) best = m;
  }
  std::printf(" %7.1f |", ops / best / 1e6);
  for (const auto& c : cs) {
    if (is_ours(c.name)) continue;
    const double m = c.median();
    if (std::isnan(m)) std::printf("     n/a |");
    else std::printf(" %6.2fx |", m / best);
  }
  const double u8 = cs[0].median(), u7 = cs[1].median();
  if (std::isnan(u7)) std::printf("     n/a |");
  else std::printf(" %6.2fx |", u8 / u7);
  std::printf("\n");
  std::fflush(stdout);
}

void header(const std::vector<std::string>& names, const char* first) {
  std::printf("\n| %-34s |", first);
  for (auto& n : names) std::printf(" %8s |", (n + " ms").c_str());
  std::printf(" best ours GOPS |");
  int columns = static_cast<int>(names.size()) + 2;
  for (auto& n : names)
    if (!is_ours(n)) {
      std::printf(" %s/best ours |", n.c_str());
      ++columns;
    }
  std::printf(" u8/u7 |");
  std::printf("\n|%s|", std::string(36, '-').c_str());
  for (int i = 0; i < columns; ++i) std::printf("---:|");
  std::printf("\n");
}

void run_gemm(const std::string& section, const std::string& name, int64_t M, int64_t N, int64_t K) {
  GemmProblem p(M, N, K, true);
  std::vector<Contender> cs(4);
  cs[0] = {"ours", ours_gemm(p, p.packed)};
  cs[1] = {"ours u7", ours_gemm(p, p.packed7)};
#if COMPRESS_HAVE_DNNL
  std::shared_ptr<DnnlMatmul> keep;
  cs[2] = {"oneDNN", onednn_gemm(p, keep)};
#else
  cs[2] = {"oneDNN", {}};
#endif
  cs[3] = {"OpenBLAS", openblas_gemm(p)};
  measure(cs);
  record(section, name, 2.0 * M * N * K, cs);
}

// ---- convolution ----
struct ConvShape {
  const char* net;
  const char* layer;
  int64_t cin, cout, hw, k, stride, pad;
  bool depthwise;
};

void run_conv(const ConvShape& s, int64_t batch) {
  const int64_t H = s.hw, W = s.hw;
  const int64_t oh = K::conv_output_size(H, s.k, s.stride, s.pad, 1), ow = K::conv_output_size(W, s.k, s.stride, s.pad, 1);
  const int64_t cout = s.depthwise ? s.cin : s.cout;
  const int64_t kper = s.depthwise ? s.k * s.k : s.k * s.k * s.cin;
  auto x = rand_u8(batch * H * W * s.cin);
  auto w = rand_s8(cout * kper);  // OHWI for ours (random anyway)
  std::vector<float> scale(cout, 1e-4f), bias(cout, 3.f);
  std::vector<uint8_t> y(batch * oh * ow * cout);
  const Blob packed = aligned(s.depthwise ? K::pack_depthwise_u8s8(w.data(), s.cin, s.k, s.k, 0)
                                          : K::pack_conv_u8s8(w.data(), cout, s.k, s.k, s.cin, 0,
                                                              K::dense_layout_for(K::active_isa())));
  // Depthwise has one layout; "ours u7" is n/a there.
  const Blob packed7 = s.depthwise ? Blob{}
                                   : aligned(K::pack_conv_u8s8(w.data(), cout, s.k, s.k, s.cin, 0,
                                                               K::dense_layout_for(K::active_isa(), true)));
  K::ConvGeometry g;
  g.batch = batch; g.height = H; g.width = W;
  g.stride_h = g.stride_w = s.stride;
  g.pad_h = g.pad_w = s.pad;
  K::Epilogue ep;
  ep.scale = scale.data();
  ep.bias = bias.data();
  ep.out = K::OutType::u8;
  std::vector<Contender> cs(4);
  auto ours_conv = [&](const Blob& blob) -> std::function<void()> {
    if (blob.empty()) return {};
    const Blob* b = &blob;
    return [&, b] {
      K::PackedView v(b->data(), static_cast<int64_t>(b->size()));
      K::conv2d_u8s8(x.data(), g, v, y.data(), ep, omp_parallel());
    };
  };
  cs[0] = {"ours", ours_conv(packed)};
  cs[1] = {"ours u7", ours_conv(packed7)};
#if COMPRESS_HAVE_DNNL
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  memory::desc src_md({batch, s.cin, H, W}, dt::u8, tag::nhwc), dst_md({batch, cout, oh, ow}, dt::u8, tag::nhwc),
      b_md({cout}, dt::f32, tag::x);
  memory::desc w_any = s.depthwise ? memory::desc({s.cin, 1, 1, s.k, s.k}, dt::s8, tag::any)
                                   : memory::desc({cout, s.cin, s.k, s.k}, dt::s8, tag::any);
  memory::desc w_user = s.depthwise ? memory::desc({s.cin, 1, 1, s.k, s.k}, dt::s8, tag::goihw)
                                    : memory::desc({cout, s.cin, s.k, s.k}, dt::s8, tag::ohwi);
  primitive_attr attr;
  attr.set_output_scales(1 << 1, scale);
  convolution_forward::desc cd(prop_kind::forward_inference, algorithm::convolution_direct, src_md, w_any, b_md, dst_md,
                               {s.stride, s.stride}, {0, 0}, {s.pad, s.pad}, {s.pad, s.pad});
  convolution_forward::primitive_desc pd(cd, attr, eng());
  convolution_forward prim(pd);
  memory src(src_md, eng(), x.data()), dst(dst_md, eng(), y.data()), bm(b_md, eng(), bias.data());
  memory wu(w_user, eng(), w.data()), wp(pd.weights_desc(), eng());
  reorder(wu, wp).execute(strm(), wu, wp);
  strm().wait();
  cs[2] = {"oneDNN", [&] {
             prim.execute(strm(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wp}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, dst}});
             strm().wait();
           }};
#else
  cs[2] = {"oneDNN", {}};
#endif
  // OpenBLAS: sgemm on the convolution's implicit GEMM shape (no im2col cost
  // charged to it); depthwise has no GEMM form, so it is left out.
  const int64_t M = batch * oh * ow;
  std::vector<float> af, wf, cf;
  if (!s.depthwise && g_sgemm) {
    af.assign(M * kper, 0.5f);
    wf.assign(cout * kper, 0.25f);
    cf.assign(M * cout, 0.f);
    cs[3] = {"OpenBLAS", [&] {
               g_sgemm(101, 111, 112, static_cast<int>(M), static_cast<int>(cout), static_cast<int>(kper), 1.f, af.data(),
                       static_cast<int>(kper), wf.data(), static_cast<int>(kper), 0.f, cf.data(), static_cast<int>(cout));
             }};
  } else {
    cs[3] = {"OpenBLAS", {}};
  }
  measure(cs);
  char name[128];
  std::snprintf(name, sizeof name, "%s %s b%lld", s.net, s.layer, static_cast<long long>(batch));
  record("model", name, 2.0 * M * cout * kper, cs);
}

const ConvShape kModelConvs[] = {
    // resnet18 (224x224): every distinct convolution
    {"resnet18", "conv1 7x7s2 3-64", 3, 64, 224, 7, 2, 3, false},
    {"resnet18", "l1 3x3 64-64 @56", 64, 64, 56, 3, 1, 1, false},
    {"resnet18", "l2 3x3s2 64-128", 64, 128, 56, 3, 2, 1, false},
    {"resnet18", "l2 3x3 128-128 @28", 128, 128, 28, 3, 1, 1, false},
    {"resnet18", "l2 ds 1x1s2 64-128", 64, 128, 56, 1, 2, 0, false},
    {"resnet18", "l3 3x3s2 128-256", 128, 256, 28, 3, 2, 1, false},
    {"resnet18", "l3 3x3 256-256 @14", 256, 256, 14, 3, 1, 1, false},
    {"resnet18", "l4 3x3s2 256-512", 256, 512, 14, 3, 2, 1, false},
    {"resnet18", "l4 3x3 512-512 @7", 512, 512, 7, 3, 1, 1, false},
    // mobilenet_v2: stem, and representative pointwise / depthwise layers
    {"mbv2", "stem 3x3s2 3-32", 3, 32, 224, 3, 2, 1, false},
    {"mbv2", "dw 3x3 32 @112", 32, 32, 112, 3, 1, 1, true},
    {"mbv2", "pw 1x1 32-16 @112", 32, 16, 112, 1, 1, 0, false},
    {"mbv2", "pw 1x1 16-96 @112", 16, 96, 112, 1, 1, 0, false},
    {"mbv2", "dw 3x3s2 96 @112", 96, 96, 112, 3, 2, 1, true},
    {"mbv2", "pw 1x1 144-24 @56", 144, 24, 56, 1, 1, 0, false},
    {"mbv2", "dw 3x3 192 @28", 192, 192, 28, 3, 1, 1, true},
    {"mbv2", "pw 1x1 64-384 @14", 64, 384, 14, 1, 1, 0, false},
    {"mbv2", "dw 3x3 576 @14", 576, 576, 14, 3, 1, 1, true},
    {"mbv2", "pw 1x1 960-160 @7", 960, 160, 7, 1, 1, 0, false},
    {"mbv2", "pw 1x1 320-1280 @7", 320, 1280, 7, 1, 1, 0, false},
    // the Fashion-MNIST zoo's stem (one input channel) and the cnn's second layer
    {"zoo", "stem 3x3 1-32 @28", 1, 32, 28, 3, 1, 1, false},
    {"zoo", "cnn 3x3 32-64 @14", 32, 64, 14, 3, 1, 1, false},
};

// ---- sparse ----
void run_sparse(int64_t M, int64_t N, int64_t K, bool smoke) {
  // The dense reference is the faster of our two dense layouts on the same
  // (7-bit) activations; the sparse kernels see the same data.
  GemmProblem p(M, N, K, false);
  std::vector<Contender> dense(2);
  dense[0] = {"dense", ours_gemm(p, p.packed)};
  dense[1] = {"dense u7", ours_gemm(p, p.packed7)};
  measure(dense);
  std::printf("\n| sparse M=%lld N=%lld K=%lld | ms | best dense/sparse |\n|---|---:|---:|\n",
              static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K));
  std::printf("| dense INT8, u8 layout | %.3f | |\n| dense INT8, 7-bit layout | %.3f | |\n", dense[0].median(),
              dense[1].median());
  json rows = json::array();
  auto add = [&](const std::string& name, const std::vector<uint8_t>& mask) {
    auto blob = name.rfind("2:4", 0) == 0 ? K::pack_sparse_2_4_u8s8(p.W.data(), mask.data(), N, K, 0)
                                          : K::pack_sparse_1x4_u8s8(p.W.data(), mask.data(), N, K, 0);
    std::vector<Contender> cs(3);
    cs[0] = {"sparse", [&] {
               K::PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
               K::sparse_gemm_u8s8s32(p.M, p.A.data(), p.K, v, p.C.data(), p.N, p.ep(), omp_parallel());
             }};
    // Both dense layouts re-measured alongside, for side-by-side ratios.
    cs[1] = {"dense", ours_gemm(p, p.packed)};
    cs[2] = {"dense u7", ours_gemm(p, p.packed7)};
    measure(cs);
    const double best_dense = std::min(cs[1].median(), cs[2].median());
    std::printf("| %s | %.3f | %.2fx |\n", name.c_str(), cs[0].median(), best_dense / cs[0].median());
    std::fflush(stdout);
    Row r{"sparse", name + " M" + std::to_string(M) + " N" + std::to_string(N) + " K" + std::to_string(K),
          2.0 * M * N * K,
          {{"sparse", cs[0].median()}, {"dense", cs[1].median()}, {"dense u7", cs[2].median()}}};
    g_rows.push_back(r);
  };
  std::uniform_real_distribution<double> u(0, 1);
  for (double sp : smoke ? std::vector<double>{0.8} : std::vector<double>{0.5, 0.7, 0.8, 0.9}) {
    std::vector<uint8_t> mask(N * K, 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k0 = 0; k0 < K; k0 += 4)
        if (u(g_rng) >= sp)
          for (int64_t k = k0; k < std::min(K, k0 + 4); ++k) mask[n * K + k] = 1;
    char name[64];
    std::snprintf(name, sizeof name, "1x4 blocks %.0f%% sparse", sp * 100);
    add(name, mask);
  }
  std::vector<uint8_t> mask(N * K, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k0 = 0; k0 < K; k0 += 4) {
      const int a = static_cast<int>(g_rng() % 4), b = (a + 1 + static_cast<int>(g_rng() % 3)) % 4;
      mask[n * K + k0 + a] = mask[n * K + k0 + b] = 1;
    }
  add("2:4 (50% sparse)", mask);
}

// A random 1x4 mask of W[N][K]: each block of 4 along K kept with
// probability 1 - sparsity (K padded: the last block may be short).
std::vector<uint8_t> random_1x4_mask(int64_t N, int64_t K, double sparsity) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<uint8_t> mask(N * K, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k0 = 0; k0 < K; k0 += 4)
      if (u(g_rng) >= sparsity)
        for (int64_t k = k0; k < std::min(K, k0 + 4); ++k) mask[n * K + k] = 1;
  return mask;
}

// ---- sparse_isa: the 1x4 kernels against every dense kernel, per layer shape ----
// The shapes of bench/sparse_layer_shapes.py (fully connected at batch 32,
// pointwise convolutions at their N*H*W rows). Each ISA's kernel is called
// explicitly (the Isa argument), so dense AMX, dense VNNI, dense AVX2 and
// the VNNI and AVX2 sparse kernels are timed interleaved in one process.
// Activations over all of 0..255, as compress quantize produces them (the
// AVX2 sparse kernel takes its s16 pair loop; the VNNI one has one loop).
void run_sparse_isa(bool smoke) {
  using Isa = K::Isa;
  if (!K::cpu_supports(Isa::avx512vnni)) {
    std::printf("\n## sparse_isa: skipped, this CPU lacks AVX-512 VNNI\n");
    return;
  }
  const bool amx = K::cpu_supports(Isa::amx);
  std::printf("\n## 1x4 sparse vs dense per ISA (u8 activations 0..255; ratio = dense ms / sparse ms, > 1: sparse "
              "faster)\n| M | N | K | dense amx ms | dense vnni ms | dense avx2 ms | 80%%: vnni-sp/amx | 80%%: vnni-sp/vnni "
              "| 80%%: avx2-sp/avx2 | 90%%: vnni-sp/amx | 90%%: vnni-sp/vnni | 90%%: avx2-sp/avx2 |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  const std::vector<std::array<int64_t, 3>> shapes =
      smoke ? std::vector<std::array<int64_t, 3>>{{32, 64, 64}}
            : std::vector<std::array<int64_t, 3>>{{32, 128, 1152}, {32, 512, 512},  {32, 1024, 1024}, {32, 1024, 784},
                                                  {32, 256, 4096}, {6272, 96, 24},  {6272, 24, 96},   {1568, 128, 32},
                                                  {1568, 32, 128}, {392, 256, 64},  {392, 64, 256}};
  for (const auto& [M, N, Kd] : shapes) {
    GemmProblem p(M, N, Kd, false);
    for (auto& a : p.A) a = static_cast<uint8_t>(g_rng() & 0xFF);
    const auto vnni = K::pack_gemm_u8s8(p.W.data(), N, Kd, 0, K::Layout::vnni_n32k4_s8);
    const auto avx2 = K::pack_gemm_u8s8(p.W.data(), N, Kd, 0, K::Layout::avx2_n16k4_u8s8);
    std::vector<std::vector<uint8_t>> sparse;
    for (double sp : {0.8, 0.9}) {
      const std::vector<uint8_t> mask = random_1x4_mask(N, Kd, sp);
      sparse.push_back(K::pack_sparse_1x4_u8s8(p.W.data(), mask.data(), N, Kd, 0));
    }
    auto dense_on = [&p](const std::vector<uint8_t>& blob, Isa isa) -> std::function<void()> {
      return [&p, &blob, isa] {
        K::PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
        K::gemm_u8s8s32(p.M, p.A.data(), p.K, v, p.C.data(), p.N, p.ep(), omp_parallel(), isa);
      };
    };
    auto sparse_on = [&p](const std::vector<uint8_t>& blob, Isa isa) -> std::function<void()> {
      return [&p, &blob, isa] {
        K::PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
        K::sparse_gemm_u8s8s32(p.M, p.A.data(), p.K, v, p.C.data(), p.N, p.ep(), omp_parallel(), isa);
      };
    };
    std::vector<Contender> cs = {{"dense amx", amx ? dense_on(vnni, Isa::amx) : std::function<void()>()},
                                 {"dense vnni", dense_on(vnni, Isa::avx512vnni)},
                                 {"dense avx2", dense_on(avx2, Isa::avx2)},
                                 {"sparse80 vnni", sparse_on(sparse[0], Isa::avx512vnni)},
                                 {"sparse80 avx2", sparse_on(sparse[0], Isa::avx2)},
                                 {"sparse90 vnni", sparse_on(sparse[1], Isa::avx512vnni)},
                                 {"sparse90 avx2", sparse_on(sparse[1], Isa::avx2)}};
    measure(cs);
    const double d_amx = cs[0].median(), d_vnni = cs[1].median(), d_avx2 = cs[2].median();
    std::printf("| %lld | %lld | %lld | %.4f | %.4f | %.4f", static_cast<long long>(M), static_cast<long long>(N),
                static_cast<long long>(Kd), d_amx, d_vnni, d_avx2);
    for (int s = 0; s < 2; ++s)
      std::printf(" | %.2fx | %.2fx | %.2fx", d_amx / cs[3 + 2 * s].median(), d_vnni / cs[3 + 2 * s].median(),
                  d_avx2 / cs[4 + 2 * s].median());
    std::printf(" |\n");
    std::fflush(stdout);
    Row r{"sparse_isa", "M" + std::to_string(M) + " N" + std::to_string(N) + " K" + std::to_string(Kd),
          2.0 * M * N * Kd, {}};
    for (const auto& c : cs) r.ms.emplace_back(c.name, c.median());
    g_rows.push_back(r);
  }
}

// ---- sparse_conv: k x k convolutions, sparse (im2col blocks + 1x4 kernel) against dense, per ISA ----
// The 3x3 layers of the Fashion-MNIST zoo cnn and resnet at batch 32 (their
// NHWC shapes at 28x28 input), NHWC u8 activations over 0..255. Dense: the
// conv2d_u8s8 path each ISA takes (AMX: direct convolution where the shape
// allows, else implicit im2col rows; VNNI / AVX2: im2col rows). Sparse:
// sparse_conv2d_u8s8 with random 1x4 masks keeping 20% / 10% of the blocks
// along (kh, kw, c), its time including the im2col. Interleaved, median.
struct SparseConvShape {
  const char* layer;
  int64_t cin, cout, hw, stride;
};

void run_sparse_conv(bool smoke) {
  using Isa = K::Isa;
  if (!K::cpu_supports(Isa::avx512vnni)) {
    std::printf("\n## sparse_conv: skipped, this CPU lacks AVX-512 VNNI\n");
    return;
  }
  const bool amx = K::cpu_supports(Isa::amx);
  const int64_t batch = smoke ? 2 : 32;
  std::printf("\n## 1x4 sparse vs dense 3x3 convolutions per ISA, batch %lld (u8 activations 0..255; ratio = dense ms / "
              "sparse ms, > 1: sparse faster)\n| layer | M | N | K | dense amx ms | dense vnni ms | dense avx2 ms | "
              "80%%: vnni-sp/amx | 80%%: vnni-sp/vnni | 80%%: avx2-sp/avx2 | 90%%: vnni-sp/amx | 90%%: vnni-sp/vnni | "
              "90%%: avx2-sp/avx2 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
              static_cast<long long>(batch));
  const std::vector<SparseConvShape> shapes =
      smoke ? std::vector<SparseConvShape>{{"smoke 3x3 8-8 @6", 8, 8, 6, 1}}
            : std::vector<SparseConvShape>{{"cnn features.4 3x3 32-64 @14", 32, 64, 14, 1},
                                           {"cnn features.8 3x3 64-128 @7", 64, 128, 7, 1},
                                           {"resnet layer1 3x3 32-32 @14", 32, 32, 14, 1},
                                           {"resnet layer2.0.conv1 3x3s2 32-64 @14", 32, 64, 14, 2},
                                           {"resnet layer2 3x3 64-64 @7", 64, 64, 7, 1},
                                           {"resnet layer3.0.conv1 3x3s2 64-128 @7", 64, 128, 7, 2},
                                           {"resnet layer3 3x3 128-128 @4", 128, 128, 4, 1}};
  for (const SparseConvShape& s : shapes) {
    K::ConvGeometry g;
    g.batch = batch; g.height = s.hw; g.width = s.hw; g.stride_h = g.stride_w = s.stride; g.pad_h = g.pad_w = 1;
    const int64_t oh = K::conv_output_size(s.hw, 3, s.stride, 1, 1), Kd = 9 * s.cin, N = s.cout;
    const int64_t M = batch * oh * oh;
    std::vector<uint8_t> x(batch * s.hw * s.hw * s.cin), y(M * N);
    for (auto& a : x) a = static_cast<uint8_t>(g_rng() & 0xFF);
    const std::vector<int8_t> w = rand_s8(N * Kd);  // OHWI
    std::vector<float> scale(N, 1e-4f), bias(N, 3.f);
    K::Epilogue ep;
    ep.scale = scale.data();
    ep.bias = bias.data();
    ep.out = K::OutType::u8;
    const Blob vnni = aligned(K::pack_conv_u8s8(w.data(), N, 3, 3, s.cin, 0, K::Layout::vnni_n32k4_s8));
    const Blob avx2 = aligned(K::pack_conv_u8s8(w.data(), N, 3, 3, s.cin, 0, K::Layout::avx2_n16k4_u8s8));
    std::vector<Blob> sparse;
    for (double sp : {0.8, 0.9}) {
      const std::vector<uint8_t> mask = random_1x4_mask(N, Kd, sp);  // along (kh, kw, c)
      sparse.push_back(aligned(
          K::pack_sparse_conv_u8s8(w.data(), mask.data(), N, 3, 3, s.cin, 0, K::PackedKind::sparse_1x4)));
    }
    auto conv_on = [&](const Blob& blob, Isa isa, bool is_sparse) -> std::function<void()> {
      return [&, isa, is_sparse] {
        K::PackedView v(blob.data(), static_cast<int64_t>(blob.size()));
        if (is_sparse)
          K::sparse_conv2d_u8s8(x.data(), g, v, y.data(), ep, omp_parallel(), isa);
        else
          K::conv2d_u8s8(x.data(), g, v, y.data(), ep, omp_parallel(), isa);
      };
    };
    std::vector<Contender> cs = {{"dense amx", amx ? conv_on(vnni, Isa::amx, false) : std::function<void()>()},
                                 {"dense vnni", conv_on(vnni, Isa::avx512vnni, false)},
                                 {"dense avx2", conv_on(avx2, Isa::avx2, false)},
                                 {"sparse80 vnni", conv_on(sparse[0], Isa::avx512vnni, true)},
                                 {"sparse80 avx2", conv_on(sparse[0], Isa::avx2, true)},
                                 {"sparse90 vnni", conv_on(sparse[1], Isa::avx512vnni, true)},
                                 {"sparse90 avx2", conv_on(sparse[1], Isa::avx2, true)}};
    measure(cs);
    const double d_amx = cs[0].median(), d_vnni = cs[1].median(), d_avx2 = cs[2].median();
    std::printf("| %s | %lld | %lld | %lld | %.4f | %.4f | %.4f", s.layer, static_cast<long long>(M),
                static_cast<long long>(N), static_cast<long long>(Kd), d_amx, d_vnni, d_avx2);
    for (int i = 0; i < 2; ++i)
      std::printf(" | %.2fx | %.2fx | %.2fx", d_amx / cs[3 + 2 * i].median(), d_vnni / cs[3 + 2 * i].median(),
                  d_avx2 / cs[4 + 2 * i].median());
    std::printf(" |\n");
    std::fflush(stdout);
    Row r{"sparse_conv", s.layer, 2.0 * M * N * Kd, {}};
    for (const auto& c : cs) r.ms.emplace_back(c.name, c.median());
    g_rows.push_back(r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, only, filter;
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) g_threads = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) g_reps = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "--smoke") smoke = true;
    else {
      std::fprintf(stderr, "usage: compress_bench_int8 [--threads N] [--reps R] [--json PATH] [--smoke] [--only peak|exact|square|model|sparse|sparse_isa|sparse_conv] [--filter TEXT]\n");
      return 2;
    }
  }
  if (smoke) {
    g_reps = 1;
    g_target_ms = 1;
  }
  omp_set_num_threads(g_threads);
  load_openblas();
  json meta;
  std::printf("# compress_bench_int8: isa=%s threads=%d reps=%d (median), openblas=%s, onednn=%s\n",
              K::isa_name(K::active_isa()), g_threads, g_reps, g_sgemm ? "yes" : "no",
              COMPRESS_HAVE_DNNL ? "yes" : "no");
  meta["isa"] = K::isa_name(K::active_isa());
  meta["threads"] = g_threads;
  meta["reps"] = g_reps;
  const auto want = [&](const char* s) { return only.empty() || only == s; };
  const auto keep = [&](const std::string& layer) { return filter.empty() || layer.find(filter) != std::string::npos; };

  if (want("peak") && !smoke && K::cpu_supports(K::Isa::avx2)) {
    const double ghz = bench::measure_clock_ghz();
    const double madd = bench::measure_madd_macs_per_s();
    const double maddubs = bench::measure_maddubs_macs_per_s();
    const double u7 = bench::measure_u7_macs_per_s();
    std::printf("\n## peak (one core, measured)\nclock %.2f GHz; vpmaddwd+vpaddd: %.1f GMAC/s = %.1f MAC/cycle; "
                "vpmaddubsw+vpmaddwd+vpaddd: %.1f GMAC/s = %.1f MAC/cycle; "
                "2x vpmaddubsw+vpaddw+vpmaddwd+vpaddd (7-bit): %.1f GMAC/s = %.1f MAC/cycle\n",
                ghz, madd / 1e9, madd / 1e9 / ghz, maddubs / 1e9, maddubs / 1e9 / ghz, u7 / 1e9, u7 / 1e9 / ghz);
    std::printf("int8 ceiling for %d cores, as measured now: %.0f GOPS on the u8 path (default), %.0f GOPS on the "
                "7-bit path, %.0f GOPS on the s16 path (2 ops per MAC)\n",
                g_threads, 2 * maddubs * g_threads / 1e9, 2 * u7 * g_threads / 1e9, 2 * madd * g_threads / 1e9);
    meta["u7_gmacs_per_core"] = u7 / 1e9;
    meta["peak_gops_u7_path"] = 2 * u7 * g_threads / 1e9;
    meta["clock_ghz"] = ghz;
    meta["madd_gmacs_per_core"] = madd / 1e9;
    meta["maddubs_gmacs_per_core"] = maddubs / 1e9;
    meta["peak_gops_u8_path"] = 2 * maddubs * g_threads / 1e9;
    meta["peak_gops_s16_path"] = 2 * madd * g_threads / 1e9;
    if (K::cpu_supports(K::Isa::avx512vnni)) {
      // The ceiling of the VNNI kernels (and of oneDNN's VNNI code): per layer,
      // "best ours GOPS" in the model section against this says how much is left.
      const double vnni = bench::measure_vnni_macs_per_s();
      std::printf("AVX-512 VNNI vpdpbusd (zmm, 16 accumulators): %.1f GMAC/s = %.1f MAC/cycle per core; "
                  "ceiling for %d cores %.0f GOPS\n",
                  vnni / 1e9, vnni / 1e9 / ghz, g_threads, 2 * vnni * g_threads / 1e9);
      meta["vnni_gmacs_per_core"] = vnni / 1e9;
      meta["peak_gops_vnni"] = 2 * vnni * g_threads / 1e9;
    }
    if (K::cpu_supports(K::Isa::amx)) {
      const double amx = bench::measure_amx_macs_per_s();
      std::printf("AMX tdpbusd (2 x 2 tiles, operands from L1): %.1f GMAC/s = %.0f MAC/cycle per core\n", amx / 1e9,
                  amx / 1e9 / ghz);
      meta["amx_gmacs_per_core"] = amx / 1e9;
    }
  }
  if (want("exact")) {
    const json e = exactness_check();
    std::printf("\n## exactness: A = 255, W = 127, K = 64 (u8*s8 pair sums overflow s16)\nexact %.0f, ours %s, oneDNN %s\n",
                e["exact"].get<double>(), e["ours"].dump().c_str(), e.contains("onednn") ? e["onednn"].dump().c_str() : "n/a");
    meta["exactness"] = e;
  }
  const std::vector<std::string> names = {"ours", "ours u7", "oneDNN", "OpenBLAS"};
  if (want("square")) {
    std::printf("\n## square GEMMs u8 x s8 -> u8 (OpenBLAS: sgemm f32)\n");
    header(names, "M=N=K");
    for (int64_t s : smoke ? std::vector<int64_t>{64} : std::vector<int64_t>{512, 1024, 1536, 2048})
      run_gemm("square", std::to_string(s), s, s, s);
  }
  if (want("model")) {
    std::printf("\n## resnet18 / mobilenet_v2 layers, NHWC u8 (OpenBLAS: sgemm on the implicit GEMM, no im2col)\n");
    header(names, "layer");
    for (int64_t batch : smoke ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 32}) {
      int count = 0;
      for (const auto& s : kModelConvs) {
        if (smoke && ++count > 2) break;
        if (!keep(std::string(s.net) + " " + s.layer)) continue;
        run_conv(s, batch);
      }
      if (keep("resnet18 fc 512-1000")) run_gemm("model", "resnet18 fc 512-1000 b" + std::to_string(batch), batch, 1000, 512);
      if (keep("mbv2 fc 1280-1000")) run_gemm("model", "mbv2 fc 1280-1000 b" + std::to_string(batch), batch, 1000, 1280);
    }
  }
  if (want("sparse")) {
    if (smoke) run_sparse(16, 64, 64, true);
    else {
      run_sparse(256, 1024, 1024, false);
      run_sparse(32, 1024, 1024, false);
    }
  }
  if (want("sparse_isa")) run_sparse_isa(smoke);
  if (want("sparse_conv")) run_sparse_conv(smoke);
  if (!json_path.empty()) {
    json out;
    out["meta"] = meta;
    out["rows"] = json::array();
    for (const auto& r : g_rows) {
      json j;
      j["section"] = r.section;
      j["name"] = r.name;
      j["ops"] = r.ops;
      for (const auto& [n, ms] : r.ms) j["ms"][n] = std::isnan(ms) ? json() : json(ms);
      out["rows"].push_back(j);
    }
    std::ofstream f(json_path + ".tmp");
    f << out.dump(2) << "\n";
    f.close();
    std::rename((json_path + ".tmp").c_str(), json_path.c_str());
  }
  return 0;
}
