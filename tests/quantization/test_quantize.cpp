// Post-training static quantization: plan, conversion, accuracy (SQNR),
// size, and loading the result in C++ (compress_ops only) and in Python.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "compress/io.h"
#include "compress/kernels/isa.h"
#include "compress/kernels/packed.h"
#include "compress/ir/export.h"
#include "compress/ir/import.h"
#include "compress/models/zoo.h"
#include "compress/passes/fold_batch_norm.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::testing;
namespace fs = std::filesystem;

namespace {

const quant::LayerReport& layer(const quant::QuantizeReport& r, const std::string& name) {
  for (const auto& l : r.layers)
    if (l.name == name) return l;
  FAIL("no layer " << name << " in the report");
  throw;
}

// A torchvision fixture quantized with the defaults on 3 random batches of 2.
quant::QuantizeReport quantize_fixture(const std::string& path, Graph& g) {
  g = import_module(load_module(path));
  g.set_example_inputs({InputSpec{{2, 3, 224, 224}}});
  return quant::quantize_static(g, random_batches({2, 3, 224, 224}, 3));
}

// Saves `m` with its example input and expected output as buffers (what
// tests/ops/ops_roundtrip checks), and the output alone for Python.
void save_with_expectation(torch::jit::Module m, const at::Tensor& x, const std::string& path) {
  torch::NoGradGuard no_grad;
  at::Tensor y = m.forward({x}).toTensor();
  m.register_buffer("example_input", x);
  m.register_buffer("expected_output", y);
  save_module(m, path);  // the weights in their storage form, as the CLI writes them
}

// The saved model runs in a C++ program linking only compress_ops, and in
// Python after torch.ops.load_library, reproducing the outputs it was saved with.
void check_loads_elsewhere(const std::string& path) {
  std::string log = quant_scratch() + "/load.log";
  std::string cpp = std::string(COMPRESS_BINARY_DIR) + "/tests/ops/ops_roundtrip check " + path + " > " + log + " 2>&1";
  CHECK(run_command(cpp) == 0);
  std::string script = quant_scratch() + "/load.py";
  std::ofstream(script) << "import sys, torch\n"
                           "torch.ops.load_library(sys.argv[1])\n"
                           "m = torch.jit.load(sys.argv[2]).eval()\n"
                           "with torch.no_grad():\n"
                           "    y = m(m.example_input)\n"
                           "d = (y - m.expected_output).abs().max().item()\n"
                           "print('maxdiff', d)\n"
                           "sys.exit(0 if d == 0.0 else 1)\n";
  std::string py = std::string(COMPRESS_SYSTEM_PYTHON) + " " + script + " " + COMPRESS_BINARY_DIR +
                   "/src/ops/libcompress_ops.so " + path + " > " + log + " 2>&1";
  int code = run_command(py);
  std::ifstream f(log);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  INFO(text);
  CHECK(code == 0);
}

}  // namespace

TEST_CASE("a view() of a float value between INT8 layers runs (as reshape), equal to the float model's", "[quant]") {
  // conv -> relu -> conv, then float ops on the INT8 layers' results (a
  // scaled add, tanh) and x.view(n, -1): those float values are NHWC seen as
  // NCHW, which view() refuses; quantizing the model failed on it.
  torch::manual_seed(5);
  const std::string conv_cls = "__torch__.torch.nn.modules.conv.Conv2d";
  auto conv = [&](int64_t out, int64_t in) {
    return make_module(conv_cls, {{"weight", at::randn({out, in, 3, 3}) * 0.3}, {"bias", at::randn({out}) * 0.1}},
                       "def forward(self, x):\n    return torch.conv2d(x, self.weight, self.bias, [1, 1], [1, 1], [1, 1], 1)\n");
  };
  auto root = make_module("__torch__.test.ViewNet", {}, "");
  root.register_module("conv1", conv(8, 3));
  root.register_module("conv2", conv(8, 8));
  root.register_module("fc", make_module("__torch__.torch.nn.modules.linear.Linear",
                                         {{"weight", at::randn({10, 8 * 8 * 8}) * 0.05}, {"bias", at::randn({10}) * 0.1}},
                                         "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n"));
  root.define(R"(
def forward(self, x):
    y = torch.relu(self.conv1.forward(x))
    z = torch.tanh(self.conv2.forward(y) + y * 0.5)
    z = torch.max_pool2d(z, [2, 2], [2, 2], [0, 0], [1, 1], False)
    return self.fc.forward(z.view(z.size(0), -1))
)");
  root.eval();
  Graph g = import_module(root);
  g.set_example_inputs({InputSpec{{4, 3, 16, 16}}});
  quant::QuantizeReport r = quant::quantize_static(g, random_batches({4, 3, 16, 16}, 3));
  INFO(r.to_json().dump(2));
  auto ops = op_counts(g);
  CHECK(ops["compress::conv2d_int8"] == 2);
  CHECK(ops["aten::view"] == 0);
  CHECK(ops["aten::reshape"] == 1);
  CHECK(r.output_sqnr_db > 25.0);
  torch::jit::Module q = export_module(g);
  const at::Tensor x = at::randn({2, 3, 16, 16});
  const at::Tensor want = root.forward({x}).toTensor(), got = q.forward({x}).toTensor();
  CHECK(got.sizes() == want.sizes());
  CHECK((got - want).abs().max().item<double>() < 0.1 * want.abs().max().item<double>());
}

TEST_CASE("the plan fuses relu, the residual add and relu6 into the layers' epilogue", "[quant]") {
  Graph g = small_cnn_graph();
  fold_batch_norm(g);
  std::vector<quant::FusedLayer> plan = quant::plan_layers(g);
  REQUIRE(plan.size() == 4);
  for (const auto& f : plan) CHECK(f.int8());
  CHECK(plan[0].fused_ops() == "nn.Conv2d + aten::relu");
  CHECK(plan[1].fused_ops() == "nn.Conv2d + aten::add + aten::relu");
  CHECK(g.producer(plan[1].residual)->op_name() == "aten::max_pool2d");
  CHECK(plan[2].fused_ops() == "nn.Conv2d + aten::hardtanh");
  CHECK(plan[2].clamp_lo == 0.0);
  CHECK(plan[2].clamp_hi == 6.0);
  CHECK(plan[3].fused_ops() == "nn.Linear");

  std::vector<quant::FusedLayer> excluded = quant::plan_layers(g, {"conv2"});
  CHECK_FALSE(excluded[1].int8());
  CHECK(excluded[1].float_reason == "excluded by the user (conv2)");
  CHECK(excluded[1].add == nullptr);
  CHECK_THROWS_WITH(quant::plan_layers(g, {"conv2x"}), Catch::Contains("did you mean 'conv2'"));
}

TEST_CASE("a small CNN becomes INT8 ops end to end, with uint8 NHWC between them", "[quant]") {
  Graph g = small_cnn_graph();
  Graph original = g;
  quant::QuantizeOptions u8;
  u8.activations = "u8";  // the bounds below are 8-bit codes' (auto picks 7 bits on AVX2: the next cases)
  quant::QuantizeReport r = quant::quantize_static(g, random_batches({4, 3, 16, 16}, 4), u8);
  auto ops = op_counts(g);
  CHECK(ops["compress::conv2d_int8"] == 3);
  CHECK(ops["compress::linear_int8"] == 1);
  CHECK(ops["compress::quantize_u8_nhwc"] == 1);  // only where the float input enters
  CHECK(ops["compress::quantize_u8"] == 0);
  CHECK(ops["compress::dequantize_u8"] == 0);  // the classifier writes float itself
  CHECK(ops["aten::relu"] + ops["aten::add"] + ops["aten::hardtanh"] + ops["nn.Conv2d"] + ops["nn.Linear"] == 0);
  CHECK(r.float_nodes.empty());
  CHECK(layer(r, "fc").float_output);
  CHECK(layer(r, "conv2").output.zero_point == 0);  // after the fused relu
  // relu6: the output codes cover at most [0, 6].
  CHECK(layer(r, "dw").output.scale * 255 <= 6.0 + 1e-6);
  // Measured on these batches: 34.1 dB (percentile); minmax 33.2, entropy
  // 32.8, mse 32.2 (docs/quantization.md). Bound: 30 dB.
  INFO(r.to_json().dump(2));
  CHECK(r.output_sqnr_db > 30.0);
  for (const auto& l : r.layers) CHECK(l.sqnr_db > 30.0);

  // The exported INT8 model computes what the float model does, within the SQNR.
  torch::jit::Module q = export_module(g), f = export_module(original);
  torch::NoGradGuard no_grad;
  at::Tensor x = random_batches({4, 3, 16, 16}, 1).batch(0);
  quant::Sqnr s;
  s.add(f.forward({x}).toTensor(), q.forward({x}).toTensor());
  CHECK(s.db() > 30.0);
}

TEST_CASE("every calibration method gives a working INT8 model", "[quant]") {
  for (auto m : {quant::Method::MinMax, quant::Method::Percentile, quant::Method::Entropy, quant::Method::Mse}) {
    INFO(quant::method_name(m));
    Graph g = small_cnn_graph();
    quant::QuantizeOptions o;
    o.method = m;
    o.activations = "u8";  // 8-bit codes' bound
    quant::QuantizeReport r = quant::quantize_static(g, random_batches({4, 3, 16, 16}, 4), o);
    INFO(r.to_json().dump(2));
    CHECK(r.method == quant::method_name(m));
    CHECK(r.output_sqnr_db > 30.0);
  }
}

TEST_CASE("7-bit activations keep every code within 0..127 and use the AVX2 7-bit layout, which auto picks there",
          "[quant]") {
  CHECK(quant::resolve_activations("u8").quant_max == 255);
  CHECK(quant::resolve_activations("u7").quant_max == 127);
  CHECK_THROWS_WITH(quant::resolve_activations("u6"), "--activations 'u6': expected auto, u8 or u7");
  const kernels::Isa native = kernels::active_isa();
  struct Restore {
    kernels::Isa isa;
    ~Restore() { kernels::set_active_isa(isa); }
  } restore{native};
  for (kernels::Isa isa : {native, kernels::Isa::avx2, kernels::Isa::ref}) {
    if (!kernels::cpu_supports(isa)) continue;
    kernels::set_active_isa(isa);
    INFO(kernels::isa_name(isa));
    const quant::ActivationCodes codes = quant::resolve_activations("auto");
    CHECK(codes.quant_max == (isa == kernels::Isa::avx2 ? 127 : 255));

    for (const std::string& asked : {std::string("u7"), std::string("auto")}) {
      INFO(asked);
      Graph g = small_cnn_graph();
      Graph original = g;
      quant::QuantizeOptions o;
      o.activations = asked;
      const quant::QuantizeReport r = quant::quantize_static(g, random_batches({4, 3, 16, 16}, 4), o);
      const int64_t qmax = asked == "u7" ? 127 : codes.quant_max;
      CHECK(r.activations.quant_max == qmax);
      INFO(r.to_json().dump(2));
      for (const auto& l : r.layers) {
        CHECK(l.input.zero_point <= qmax);
        if (!l.float_output) CHECK(l.output.zero_point <= qmax);
      }
      CHECK(layer(r, "dw").output.scale * qmax <= 6.0 + 1e-6);  // relu6's codes cover at most [0, 6]
      // Every op that writes codes is told the top code: the input's quantize
      // and each INT8 layer writing uint8 (the classifier writes float).
      int64_t told = 0;
      for (Node& n : g.nodes()) {
        const std::string op = n.op_name();
        if (op == "compress::quantize_u8_nhwc" || op == "compress::conv2d_int8") {
          const Arg& last = n.inputs().back();
          if (qmax == 255) {
            CHECK((last.kind != Arg::Kind::Constant || !last.constant.isInt() || last.constant.toInt() != 127));
          } else {
            REQUIRE(last.kind == Arg::Kind::Constant);
            CHECK(last.constant.toInt() == 127);
            ++told;
          }
        }
      }
      if (qmax == 127) CHECK(told == 4);  // quantize + conv1, conv2, dw
      // The dense weights are packed for this machine's kernels and code
      // range: the AVX2 u8 / u7 layouts clip weights and keep a correction
      // list, and fall back to the exact 16-bit layout when that list would
      // exceed 2% of the weights (these random weights: conv1 and conv2).
      int64_t seven_bit_layouts = 0;
      for (const auto& name : g.param_order) {
        if (name.size() < 13 || name.compare(name.size() - 13, 13, "packed_weight") != 0) continue;
        const at::Tensor& packed = g.param(name);
        const auto layout = kernels::Layout(reinterpret_cast<const int64_t*>(packed.data_ptr())[kernels::kLayout]);
        if (layout == kernels::Layout::depthwise_s8) continue;
        INFO(name);
        const kernels::Layout expected = kernels::dense_layout_for(isa, qmax == 127);
        const bool avx2_exact = isa == kernels::Isa::avx2 && layout == kernels::Layout::avx2_n16k2_s8;
        CHECK((layout == expected || avx2_exact));
        seven_bit_layouts += layout == kernels::Layout::avx2_n16k8_u7s8;
      }
      if (isa == kernels::Isa::avx2 && qmax == 127) CHECK(seven_bit_layouts >= 1);  // fc: small weights
      // Half the codes cost about 6 dB of SQNR; the u8 model measures 34.1 dB here.
      CHECK(r.output_sqnr_db > (qmax == 127 ? 24.0 : 30.0));
      torch::jit::Module q = export_module(g), f = export_module(original);
      torch::NoGradGuard no_grad;
      at::Tensor x = random_batches({4, 3, 16, 16}, 1).batch(0);
      quant::Sqnr sq;
      sq.add(f.forward({x}).toTensor(), q.forward({x}).toTensor());
      CHECK(sq.db() > (qmax == 127 ? 24.0 : 30.0));
    }
  }
}

TEST_CASE("an excluded layer stays float between dequantize and quantize, and says why", "[quant]") {
  Graph g = small_cnn_graph();
  quant::QuantizeOptions o;
  o.exclude = {"conv2"};
  o.activations = "u8";  // the SQNR bounds below are 8-bit codes
  quant::QuantizeReport r = quant::quantize_static(g, random_batches({4, 3, 16, 16}, 4), o);
  auto ops = op_counts(g);
  CHECK(ops["compress::conv2d_int8"] == 2);
  CHECK(ops["nn.Conv2d"] == 1);
  CHECK(ops["compress::dequantize_u8"] == 1);
  CHECK(ops["compress::quantize_u8_nhwc"] == 2);  // the input, and conv2's float output
  CHECK(ops["compress::quantize_u8"] == 0);
  CHECK(layer(r, "conv2").precision == "float");
  CHECK(layer(r, "conv2").reason == "excluded by the user (conv2)");
  std::vector<std::string> listed;
  for (const auto& f : r.float_nodes) listed.push_back(f.first + ": " + f.second);
  INFO(r.to_json().dump(2));
  CHECK(listed.size() == 3);  // conv2, the add, the relu
  CHECK(r.output_sqnr_db > 30.0);  // measured 33.2 dB

  // Excluding the first layer: the residual that conv2 adds now comes from float
  // (max_pool2d of a float conv) and is quantized for the epilogue.
  Graph h = small_cnn_graph();
  o.exclude = {"conv1"};
  quant::QuantizeReport rh = quant::quantize_static(h, random_batches({4, 3, 16, 16}, 4), o);
  CHECK(layer(rh, "conv2").ops == "nn.Conv2d + aten::add + aten::relu");
  CHECK(layer(rh, "conv2").precision == "int8");
  CHECK(rh.output_sqnr_db > 30.0);  // measured 35.1 dB
}

TEST_CASE("weights with NaN are refused, naming the parameter", "[quant]") {
  Graph g = import_module(small_cnn(/*nan_weight=*/true));
  g.set_example_inputs({InputSpec{{4, 3, 16, 16}}});
  CHECK_THROWS_WITH(quant::quantize_static(g, random_batches({4, 3, 16, 16}, 2)),
                    Catch::Contains("parameter 'fc.weight' holds NaN or Inf"));
  Graph h = small_cnn_graph();
  CHECK_THROWS_WITH(quant::quantize_static(h, quant::CalibrationData{}), Catch::Contains("calibration set is empty"));
}

TEST_CASE("resnet18: INT8 with fused residuals, a quarter of the size, loads in C++ and Python", "[quant][fixtures]") {
  const std::string in = fixture("resnet18.pt");
  Graph g;
  quant::QuantizeReport r = quantize_fixture(in, g);
  INFO(r.to_json().dump(2));
  auto ops = op_counts(g);
  CHECK(ops["compress::conv2d_int8"] == 20);
  CHECK(ops["compress::linear_int8"] == 1);
  CHECK(ops["aten::add"] == 0);  // all 8 residual adds fused
  // uint8 from the first convolution to the average pool: one quantize at the
  // input, one dequantize before the pool, one quantize before fc.
  CHECK(ops["compress::quantize_u8_nhwc"] == 1);
  CHECK(ops["compress::quantize_u8"] == 1);
  CHECK(ops["compress::dequantize_u8"] == 1);
  // The max pool runs on the codes, with no float round trip around it.
  CHECK(ops["compress::max_pool2d_u8"] == 1);
  CHECK(ops["aten::max_pool2d"] == 0);
  CHECK(ops["aten::to"] == 0);
  for (const Node& n : g.nodes()) {
    if (n.op_name() != "compress::conv2d_int8") continue;
    std::string from = g.producer(n.input(0).value)->op_name();
    INFO(n.describe() << " reads " << from);
    CHECK((from == "compress::conv2d_int8" || from == "compress::max_pool2d_u8" || from == "compress::quantize_u8_nhwc"));
  }
  // Measured (percentile, 3 random batches of 2): output SQNR 36.2 dB.
  CHECK(r.output_sqnr_db > 30.0);
  torch::jit::Module q = export_module(g);
  std::string out = quant_scratch() + "/resnet18.int8.pt";
  save_module(q, out);
  // Measured 0.2503 (11.7 MB of 46.9 MB; 0.252 before weights were saved
  // in their storage form).
  double ratio = static_cast<double>(fs::file_size(out)) / static_cast<double>(fs::file_size(in));
  INFO("size ratio " << ratio);
  CHECK(ratio <= 0.27);
  std::string checked = quant_scratch() + "/resnet18.checked.pt";
  save_with_expectation(q, load_fixture_tensor("resnet18.input.pt"), checked);
  check_loads_elsewhere(checked);
}

TEST_CASE("mobilenet_v2: depthwise convolutions and relu6 run in INT8", "[quant][fixtures]") {
  Graph g;
  quant::QuantizeReport r = quantize_fixture(fixture("mobilenet_v2.pt"), g);
  INFO(r.to_json().dump(2));
  auto ops = op_counts(g);
  CHECK(ops["compress::conv2d_int8"] == 52);
  CHECK(ops["aten::hardtanh"] == 0);
  CHECK(ops["aten::add"] == 0);  // all 10 residual adds fused, also where both operands are convolutions
  // Measured (percentile, 3 random batches of 2): output SQNR 33.0 dB.
  CHECK(r.output_sqnr_db > 27.0);
  // The issue's size bound holds here too, where 17 depthwise layers and 52
  // layers' per-channel scales weigh more than in resnet18: measured 0.2516
  // of the fixture file. The file holds the weights in their storage form
  // (row-major, no padding or compensation), the same whichever CPU
  // quantized it: before, the VNNI layout gave 0.268 and the AVX2 ones,
  // which add correction lists for the weight pairs they clip, 0.273.
  std::string out = quant_scratch() + "/mobilenet_v2.int8.pt";
  save_module(export_module(g), out);
  double ratio = static_cast<double>(fs::file_size(out)) / static_cast<double>(fs::file_size(fixture("mobilenet_v2.pt")));
  INFO("size ratio " << ratio);
  CHECK(ratio <= 0.26);
}

TEST_CASE("the zoo's convolutional models quantize to about a quarter of their float file", "[quant]") {
  // The float file as `compress train` writes it (save_module). Untrained
  // models stand for the trained ones once no weight is zero: the zoo
  // initialises some batch-norm scales to zero, which would fold to
  // all-zero convolutions that pack sparse (half the resnet's file).
  // Measured (as on trained models, docs/quantization.md), since INT8
  // archives are deflated: cnn 0.236, resnet 0.237, senet 0.240, mobilenetv2
  // 0.254 (the issue's 0.27 met by all four). Before: cnn 0.258, resnet 0.259, senet
  // 0.264, mobilenetv2 0.285 (its 92k weights left the archive's code,
  // pickled module tree, 23 packed-weight headers and 8 bytes of float scale
  // and bias for each of its 2090 channels weighing a quarter of its
  // weights); before the export shared one class among identical modules and
  // weights were saved in their storage form: 0.265, 0.271, 0.282, 0.403.
  for (const auto& [arch, bound] : {std::pair<const char*, double>{"cnn", 0.27}, {"resnet", 0.27}, {"senet", 0.27},
                                    {"mobilenetv2", 0.27}}) {
    INFO(arch);
    const std::string in = quant_scratch() + "/" + arch + ".pt", out = quant_scratch() + "/" + arch + ".int8.pt";
    torch::jit::Module float_model = models::build(arch).module;
    {
      torch::NoGradGuard no_grad;
      for (const auto& p : float_model.named_parameters()) p.value.normal_(0.0, 0.1);
    }
    save_module(float_model, in);
    Graph g = import_module(load_module(in));
    g.set_example_inputs({InputSpec{{2, 1, 28, 28}}});
    quant::quantize_static(g, random_batches({2, 1, 28, 28}, 2));
    save_module(export_module(g), out);
    const double ratio = static_cast<double>(fs::file_size(out)) / static_cast<double>(fs::file_size(in));
    INFO("size ratio " << ratio << " (" << fs::file_size(out) << " of " << fs::file_size(in) << " bytes)");
    CHECK(ratio <= bound);
  }
}

TEST_CASE("static quantization gives attention leaves dynamic INT8 projections, unless excluded", "[quant][fixtures]") {
  const std::string first = "encoder.layers.encoder_layer_0.self_attention";
  for (bool exclude_first : {false, true}) {
    INFO("exclude " << first << ": " << exclude_first);
    Graph g = import_module(load_module(fixture("vit_small.pt")));
    g.set_example_inputs({InputSpec{{2, 3, 32, 32}}});
    // torchvision starts the classifier at zero (every output 0): random, so outputs can differ.
    g.set_param("heads.head.weight", at::randn(g.param("heads.head.weight").sizes()) * 0.1);
    const Graph original = g;
    quant::QuantizeOptions o;
    if (exclude_first) o.exclude = {first};
    quant::QuantizeReport r = quant::quantize_static(g, random_batches({2, 3, 32, 32}, 3), o);
    INFO(r.to_json().dump(2));
    std::vector<std::string> dynamic;
    for (const auto& l : r.dynamic_layers) dynamic.push_back(l.name);
    const std::string second = "encoder.layers.encoder_layer_1.self_attention";
    std::vector<std::string> want = {second + ".in_proj", second + ".out_proj"};
    if (!exclude_first) want.insert(want.begin(), {first + ".in_proj", first + ".out_proj"});
    std::sort(dynamic.begin(), dynamic.end());
    CHECK(dynamic == want);
    // Each converted leaf's core is listed as float, and only an excluded leaf as a whole.
    int cores = 0, whole_leaves = 0;
    for (const auto& f : r.float_nodes) {
      cores += f.first.find("(attention core") != std::string::npos;
      whole_leaves += f.second.find("excluded by the user") != std::string::npos &&
                      f.first.find("self_attention") != std::string::npos;
    }
    CHECK(cores == (exclude_first ? 1 : 2));
    CHECK(whole_leaves == (exclude_first ? 1 : 0));
    auto ops = op_counts(g);
    CHECK(ops["compress::linear_int8_dynamic"] == static_cast<int>(want.size()));
    CHECK(ops["compress::linear_int8"] >= 4);  // the MLP blocks' linears, static
    // Measured 27.4 dB with u8 activations (AMX), 21.5-22.2 with 7-bit ones
    // (AVX2: half the codes, about 6 dB less).
    CHECK(r.output_sqnr_db > (r.activations.quant_max == 127 ? 18.0 : 24.0));
    torch::jit::Module q = export_module(g), f = export_module(original);
    torch::NoGradGuard no_grad;
    const at::Tensor x = at::randn({2, 3, 32, 32});
    const at::Tensor want_y = f.forward({x}).toTensor();
    CHECK(compress::testing::max_abs_diff(q.forward({x}).toTensor(), want_y) < 0.1 * want_y.abs().max().item<double>());
  }
}
