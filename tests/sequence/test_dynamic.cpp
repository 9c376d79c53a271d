// Dynamic INT8: the ops against references computed from the same quantized
// values, and quantize_dynamic on traced LSTM, GRU, GRU+Conv1d, transformer
// and embedding-bag classifiers.
#include <catch2/catch.hpp>

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include "compress/io.h"
#include "compress/kernels/rnn_cell.h"
#include "compress/models/zoo.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/ops/ops.h"
#include "compress/quantization/dynamic.h"
#include "compress/quantization/observer.h"
#include "temp_dir.h"
#include "test_util.h"

using compress::testing::fixture;

namespace {

at::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// What linear_int8_dynamic computes, from its definition (ops.h): the codes,
// the exact integer products, and one fma per output in float.
at::Tensor reference_linear(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wscale, const at::Tensor& bias,
                            bool relu) {
  const at::Tensor xf = x.contiguous().reshape({-1, x.size(-1)});
  const float m = xf.abs().max().item<float>();
  const float s = m > 0 ? m / 127.f : 1.f, inv = 1.f / s;
  at::Tensor codes = at::empty(xf.sizes(), at::kLong);
  for (int64_t i = 0; i < xf.numel(); ++i) {
    float v = std::nearbyint(xf.data_ptr<float>()[i] * inv) + 128.f;
    v = v > 0.f ? v : 0.f;
    v = v < 255.f ? v : 255.f;
    codes.data_ptr<int64_t>()[i] = static_cast<int64_t>(v) - 128;
  }
  const at::Tensor acc = at::matmul(codes.to(at::kDouble), wq.to(at::kDouble).t());  // exact: |acc| < 2^53
  at::Tensor y = at::empty(acc.sizes(), at::kFloat);
  const int64_t M = acc.size(0), N = acc.size(1);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t n = 0; n < N; ++n) {
      float v = std::fma(static_cast<float>(acc[i][n].item<double>()), s * wscale[n].item<float>(),
                         bias.defined() ? bias[n].item<float>() : 0.f);
      y[i][n] = relu ? std::max(v, 0.f) : v;
    }
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  return y.reshape(shape);
}

// Per layer and direction: packed_ih, scale_ih, packed_hh, scale_hh, bias_ih,
// bias_hh, from a float parameter list (w_ih, w_hh, b_ih, b_hh ...), and the
// dequantized float weights (what the INT8 model multiplies by).
void dynamic_params(const std::vector<at::Tensor>& fp, std::vector<at::Tensor>& qp, std::vector<at::Tensor>& deq) {
  for (size_t i = 0; i < fp.size(); i += 4) {
    for (int j = 0; j < 2; ++j) {
      auto w = compress::quant::quantize_weight_per_channel(fp[i + j]);
      qp.push_back(compress::ops::pack_linear_int8(w.q, 128, "auto"));
      qp.push_back(w.scale);
      deq.push_back(w.q.to(at::kFloat) * w.scale.unsqueeze(1));
    }
    qp.push_back(fp[i + 2]);
    qp.push_back(fp[i + 3]);
    deq.push_back(fp[i + 2]);
    deq.push_back(fp[i + 3]);
  }
}

std::vector<at::Tensor> rnn_params(int64_t gates, int64_t in, int64_t hidden, int64_t layers, int64_t dirs,
                                   uint64_t seed) {
  std::vector<at::Tensor> p;
  auto g = gen(seed);
  const double bound = 1.0 / std::sqrt(double(hidden));
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t d = 0; d < dirs; ++d) {
      const int64_t features = l == 0 ? in : dirs * hidden;
      p.push_back(at::empty({gates * hidden, features}).uniform_(-bound, bound, g));
      p.push_back(at::empty({gates * hidden, hidden}).uniform_(-bound, bound, g));
      p.push_back(at::empty({gates * hidden}).uniform_(-bound, bound, g));
      p.push_back(at::empty({gates * hidden}).uniform_(-bound, bound, g));
    }
  return p;
}

at::Tensor first_output(const c10::IValue& v) { return v.isTensor() ? v.toTensor() : v.toTupleRef().elements()[0].toTensor(); }

}  // namespace

TEST_CASE("linear_int8_dynamic equals its definition bit for bit", "[sequence][dynamic][ops]") {
  auto g = gen(1);
  const at::Tensor w = at::randn({37, 53}, g), bias = at::randn({37}, g);
  const auto q = compress::quant::quantize_weight_per_channel(w);
  const at::Tensor packed = compress::ops::pack_linear_int8(q.q, 128, "auto");
  for (bool relu : {false, true}) {
    for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 53}, {3, 5, 53}, {64, 53}}) {
      const at::Tensor x = at::randn(shape, g) * 3.0;
      const at::Tensor y = compress::ops::linear_int8_dynamic(x, packed, q.scale, bias, relu);
      const at::Tensor ref = reference_linear(x, q.q, q.scale, bias, relu);
      CHECK(y.sizes() == ref.sizes());
      CHECK(y.equal(ref));
      // And close to the float layer (the codes' rounding only).
      const double err = (y - (relu ? at::relu(at::linear(x, w, bias)) : at::linear(x, w, bias))).abs().max().item<double>();
      CHECK(err < 0.05 * at::linear(x, w, bias).abs().max().item<double>());
    }
  }
  // Without bias; an all-zero input is exact (scale 1, every code 128).
  const at::Tensor zero = at::zeros({2, 53});
  CHECK(compress::ops::linear_int8_dynamic(zero, packed, q.scale, c10::nullopt).abs().max().item<float>() == 0.f);
  CHECK(compress::ops::linear_int8_dynamic(zero, packed, q.scale, bias).equal(bias.expand({2, 37})));
}

TEST_CASE("linear_int8_dynamic refuses NaN inputs and weights packed for another zero point", "[sequence][dynamic][ops]") {
  auto g = gen(2);
  const auto q = compress::quant::quantize_weight_per_channel(at::randn({8, 16}, g));
  const at::Tensor packed = compress::ops::pack_linear_int8(q.q, 128, "auto");
  at::Tensor x = at::randn({2, 16}, g);
  x[1][3] = std::nanf("");
  CHECK_THROWS_WITH(compress::ops::linear_int8_dynamic(x, packed, q.scale, c10::nullopt),
                    Catch::Contains("NaN or infinite"));
  const at::Tensor packed0 = compress::ops::pack_linear_int8(q.q, 0, "auto");
  CHECK_THROWS_WITH(compress::ops::linear_int8_dynamic(at::randn({2, 16}, g), packed0, q.scale, c10::nullopt),
                    Catch::Contains("input_zero_point 128"));
  CHECK_THROWS_WITH(compress::ops::linear_int8_dynamic(at::randn({2, 15}, g), packed, q.scale, c10::nullopt),
                    Catch::Contains("last dimension must be 16"));
}

TEST_CASE("lstm_int8_dynamic and gru_int8_dynamic follow torch's LSTM and GRU", "[sequence][dynamic][ops]") {
  for (bool lstm : {true, false}) {
    for (bool bidirectional : {false, true}) {
      for (bool batch_first : {false, true}) {
        INFO((lstm ? "lstm" : "gru") << " bidirectional " << bidirectional << " batch_first " << batch_first);
        const int64_t I = 12, H = 20, L = 2, D = bidirectional ? 2 : 1, T = 7, B = 3;
        const auto fp = rnn_params(lstm ? 4 : 3, I, H, L, D, 5);
        std::vector<at::Tensor> qp, deq;
        dynamic_params(fp, qp, deq);
        auto g = gen(9);
        const at::Tensor x = batch_first ? at::randn({B, T, I}, g) : at::randn({T, B, I}, g);
        const at::Tensor h0 = at::randn({L * D, B, H}, g) * 0.5, c0 = at::randn({L * D, B, H}, g) * 0.5;
        at::Tensor y, hn, yref, hnref, yfloat;
        if (lstm) {
          std::tie(y, hn, std::ignore) = compress::ops::lstm_int8_dynamic(x, {h0, c0}, qp, L, bidirectional, batch_first);
          std::tie(yref, hnref, std::ignore) = at::lstm(x, {h0, c0}, deq, true, L, 0.0, false, bidirectional, batch_first);
          yfloat = std::get<0>(at::lstm(x, {h0, c0}, fp, true, L, 0.0, false, bidirectional, batch_first));
        } else {
          std::tie(y, hn) = compress::ops::gru_int8_dynamic(x, h0, qp, L, bidirectional, batch_first);
          std::tie(yref, hnref) = at::gru(x, h0, deq, true, L, 0.0, false, bidirectional, batch_first);
          yfloat = std::get<0>(at::gru(x, h0, fp, true, L, 0.0, false, bidirectional, batch_first));
        }
        REQUIRE(y.sizes() == yref.sizes());
        REQUIRE(hn.sizes() == hnref.sizes());
        // Against the same (dequantized) weights only the activations' rounding differs.
        const double err = (y - yref).abs().max().item<double>();
        CHECK(err > 0);
        CHECK(err < 0.02);
        CHECK((hn - hnref).abs().max().item<double>() < 0.02);
        CHECK((y - yfloat).abs().max().item<double>() < 0.05);
      }
    }
  }
}

TEST_CASE("quantize_dynamic converts traced sequence classifiers that then load and run", "[sequence][dynamic]") {
  struct Case {
    std::string name;
    int int8_layers;  // at least
    std::string op;   // an op the converted model must hold
  };
  for (const Case& c : {Case{"lstm_text", 2, "compress::lstm_int8_dynamic"}, Case{"gru_text", 2, "compress::gru_int8_dynamic"},
                        Case{"gru_conv1d_text", 2, "compress::gru_int8_dynamic"},
                        Case{"transformer_text", 5, "compress::linear_int8_dynamic"},
                        Case{"bag_text", 2, "compress::linear_int8_dynamic"},
                        Case{"text_model", 3, "compress::linear_int8_dynamic"}}) {
    INFO(c.name);
    compress::Graph g = compress::import_module(compress::load_module(fixture(c.name + ".pt")));
    g.set_example_inputs({compress::InputSpec{{2, 12}, at::kLong}});  // as traced
    compress::quant::DynamicOptions o;
    o.measure = false;
    compress::quant::DynamicReport r = compress::quant::quantize_dynamic(g, o);
    int int8 = 0;
    for (const auto& l : r.layers) int8 += l.precision == "int8";
    CHECK(int8 >= c.int8_layers);
    CHECK(r.output_sqnr_db > 25);
    CHECK(g.to_string().find(c.op) != std::string::npos);
    // Saved, loaded back and run on the fixture's input: close to the original's output.
    compress::testing::TempDir dir("dynamic");
    compress::save_module(compress::export_module(g), dir.file("q.pt"));
    torch::jit::Module m = torch::jit::load(dir.file("q.pt"));
    m.eval();
    torch::NoGradGuard no_grad;
    const at::Tensor x = compress::testing::load_fixture_tensor(c.name + ".input.pt");
    const at::Tensor want = compress::testing::load_fixture_tensor(c.name + ".output.pt");
    const at::Tensor got = first_output(m.forward({x}));
    REQUIRE(got.sizes() == want.sizes());
    CHECK(compress::testing::max_abs_diff(got, want) < 0.05 * want.abs().max().item<double>() + 1e-3);
  }
}

TEST_CASE("quantize_dynamic keeps excluded layers and, measured, reports both times", "[sequence][dynamic]") {
  compress::Graph g = compress::import_module(compress::load_module(fixture("lstm_text.pt")));
  g.set_example_inputs({compress::InputSpec{{2, 12}, at::kLong}});
  compress::quant::DynamicOptions o;
  o.exclude = {"fc"};
  o.measure_iterations = 5;
  compress::quant::DynamicReport r = compress::quant::quantize_dynamic(g, o);
  REQUIRE(r.layers.size() == 2);
  for (const auto& l : r.layers) {
    INFO(l.name);
    CHECK(l.shape != "?");
    if (l.name == "fc") {
      CHECK(l.precision == "float");
      CHECK(l.reason.find("excluded by the user (fc)") != std::string::npos);
    } else {
      CHECK(l.kind == "LSTM");
      CHECK(l.float_us > 0);
      CHECK(l.int8_us > 0);
      CHECK((l.precision == "int8") == (l.int8_us < l.float_us));
    }
  }
  compress::Graph again = compress::import_module(compress::load_module(fixture("lstm_text.pt")));
  again.set_example_inputs({compress::InputSpec{{2, 12}, at::kLong}});
  compress::quant::DynamicOptions bad;
  bad.exclude = {"rnm"};
  CHECK_THROWS_WITH(compress::quant::quantize_dynamic(again, bad), Catch::Contains("did you mean 'rnn'"));
}

TEST_CASE("the LSTM and GRU cell arithmetic agrees with libm's", "[sequence][dynamic][kernels]") {
  auto g = gen(11);
  for (int64_t H : {1, 8, 37, 128}) {
    INFO("hidden " << H);
    const at::Tensor gi = at::randn({4 * H}, g) * 6.0, gh = at::randn({4 * H}, g) * 6.0;
    const at::Tensor c0 = at::randn({H}, g);
    at::Tensor c = c0.clone(), h = at::empty({H});
    compress::kernels::lstm_cell_f32(gi.data_ptr<float>(), gh.data_ptr<float>(), H, c.data_ptr<float>(),
                                     h.data_ptr<float>());
    const auto gates = (gi + gh).to(at::kDouble).chunk(4);
    const at::Tensor c_ref = gates[1].sigmoid() * c0.to(at::kDouble) + gates[0].sigmoid() * gates[2].tanh();
    const at::Tensor h_ref = gates[3].sigmoid() * c_ref.tanh();
    CHECK((c.to(at::kDouble) - c_ref).abs().max().item<double>() < 2e-6);
    CHECK((h.to(at::kDouble) - h_ref).abs().max().item<double>() < 2e-6);

    const at::Tensor gru_i = gi.narrow(0, 0, 3 * H).contiguous(), gru_h = gh.narrow(0, 0, 3 * H).contiguous();
    at::Tensor hg = c0.clone();
    compress::kernels::gru_cell_f32(gru_i.data_ptr<float>(), gru_h.data_ptr<float>(), H, hg.data_ptr<float>());
    const auto xi = gru_i.to(at::kDouble).chunk(3), xh = gru_h.to(at::kDouble).chunk(3);
    const at::Tensor r = (xi[0] + xh[0]).sigmoid(), z = (xi[1] + xh[1]).sigmoid();
    const at::Tensor n = (xi[2] + r * xh[2]).tanh();
    const at::Tensor hg_ref = (1 - z) * n + z * c0.to(at::kDouble);
    CHECK((hg.to(at::kDouble) - hg_ref).abs().max().item<double>() < 2e-6);
  }
}

TEST_CASE("the zoo's sequence models convert whole to dynamic INT8", "[sequence][dynamic][zoo]") {
  for (const auto& [name, layers] : std::vector<std::pair<std::string, int>>{{"lstm", 2}, {"gru", 2}, {"transformer", 10}}) {
    INFO(name);
    compress::Graph g = compress::import_module(compress::models::build(name, 3).module);
    g.set_example_inputs({compress::InputSpec{{4, 1, 28, 28}}});
    compress::quant::DynamicOptions o;
    o.measure = false;
    compress::quant::DynamicReport r = compress::quant::quantize_dynamic(g, o);
    REQUIRE(static_cast<int>(r.layers.size()) == layers);
    for (const auto& l : r.layers) CHECK(l.precision == "int8");
    CHECK(r.output_sqnr_db > 25);
    CHECK(r.bytes_after < r.bytes_before);
  }
}

TEST_CASE("quantize_dynamic converts the projections of MultiheadAttention leaves (a traced ViT)", "[sequence][dynamic]") {
  for (std::string name : {"vit_small", "vit_small_grad"}) {
    INFO(name);
    compress::Graph g = compress::import_module(compress::load_module(fixture(name + ".pt")));
    g.set_example_inputs({compress::InputSpec{{2, 3, 32, 32}}});
    // torchvision starts the classifier at zero (every output 0): random, so outputs can differ.
    REQUIRE(g.has_param("heads.head.weight"));
    g.set_param("heads.head.weight", at::randn(g.param("heads.head.weight").sizes(), gen(4)) * 0.1);
    const compress::Graph original = g;
    compress::quant::DynamicOptions o;
    o.measure = false;
    compress::quant::DynamicReport r = compress::quant::quantize_dynamic(g, o);
    int in_proj = 0, out_proj = 0;
    for (const auto& l : r.layers) {
      in_proj += l.precision == "int8" && l.name.find("self_attention.in_proj") != std::string::npos;
      out_proj += l.precision == "int8" && l.name.find("self_attention.out_proj") != std::string::npos;
    }
    CHECK(in_proj == 2);  // 2 encoder layers
    CHECK(out_proj == 2);
    CHECK(r.output_sqnr_db > 25);
    CHECK(r.output_max_abs_diff > 0);
    torch::jit::Module m = compress::export_module(g), f = compress::export_module(original);
    m.eval();
    f.eval();
    torch::NoGradGuard no_grad;
    const at::Tensor x = compress::testing::load_fixture_tensor(name + ".input.pt");
    const at::Tensor want = f.forward({x}).toTensor();
    REQUIRE(want.abs().max().item<double>() > 0);
    CHECK(compress::testing::max_abs_diff(m.forward({x}).toTensor(), want) < 0.05 * want.abs().max().item<double>());
  }
}
