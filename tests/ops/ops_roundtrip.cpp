// ops_roundtrip save PATH | check PATH
// save: writes a TorchScript module whose forward uses compress::conv2d_int8,
//       compress::conv2d_int8_sparse, compress::linear_int8 and
//       compress::linear_int8_sparse, with an example
//       input and the output it produced stored as attributes.
// check: loads PATH (from C++ or Python), runs forward on its stored input and
//        compares with its stored expected output. Exit 0 equal, 1 different.
#include <torch/script.h>

#include "compress/ops/script.h"

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: ops_roundtrip save|check PATH\n");
    return 2;
  }
  const std::string mode = argv[1], path = argv[2];
  try {
    if (mode == "save") {
      torch::manual_seed(11);
      auto pack = [](const char* name, std::vector<c10::IValue> args) {
        auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
        op.callBoxed(&args);
        return args.at(0).toTensor();
      };
      torch::jit::Module m("CompressRoundTrip");
      at::Tensor wc = at::randint(-128, 128, {8, 3, 3, 3}, at::kChar);
      at::Tensor wl = at::randint(-128, 128, {10, 8}, at::kChar);
      at::Tensor mask = at::rand({10, 8}) > 0.5;
      m.register_buffer("conv_w", pack("compress::pack_conv2d_int8", {wc, int64_t{100}, int64_t{1}, std::string("auto")}));
      m.register_buffer("fc_w", pack("compress::pack_linear_int8", {wl, int64_t{0}, std::string("auto")}));
      m.register_buffer("sp_w", pack("compress::pack_linear_int8_sparse", {wl, mask, int64_t{0}, std::string("1x4")}));
      at::Tensor conv_mask = at::rand({8, 3, 3, 3}) > 0.6;
      m.register_buffer("spconv_w", pack("compress::pack_conv2d_int8_sparse",
                                         {wc * conv_mask.to(at::kChar), conv_mask, int64_t{100}, std::string("1x4")}));
      m.register_buffer("conv_s", at::full({8}, 0.002f));
      m.register_buffer("fc_s", at::full({10}, 0.01f));
      m.define(R"(
def forward(self, x):
    y = ops.compress.conv2d_int8(x, self.conv_w, self.conv_s, None, [1, 1], [1, 1], [1, 1], 0, True, 0)
    z = ops.compress.conv2d_int8_sparse(x, self.spconv_w, self.conv_s, None, [2, 2], [1, 1], [1, 1], 0, True, 0)
    y = (y.to(6).mean([1, 2]) + z.to(6).mean([1, 2])).round().clamp(0, 255).to(0)  # float32 = 6, uint8 = 0
    a = ops.compress.linear_int8(y, self.fc_w, self.fc_s, None, 0, False, 6)
    b = ops.compress.linear_int8_sparse(y, self.sp_w, self.fc_s, None, 0, False, 6)
    return a + b
)", compress::ops::script_resolver());
      at::Tensor x = at::randint(0, 256, {2, 6, 6, 3}, at::kByte);
      at::Tensor out = m.forward({x}).toTensor();
      m.register_buffer("example_input", x);
      m.register_buffer("expected_output", out);
      m.save(path);
      return 0;
    }
    torch::jit::Module m = torch::jit::load(path);
    at::Tensor x = m.attr("example_input").toTensor();
    at::Tensor expect = m.attr("expected_output").toTensor();
    at::Tensor got = m.forward({x}).toTensor();
    if (!at::equal(got, expect)) {
      std::fprintf(stderr, "ops_roundtrip: output of %s differs from the one it was saved with\n", path.c_str());
      return 1;
    }
    std::printf("ops_roundtrip: %s loads and reproduces its saved output\n", path.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ops_roundtrip: %s\n", e.what());
    return 1;
  }
}
