// save_module: what the archive holds (one storage per dtype for the
// buffers) and that loading gives the same module.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <caffe2/serialize/file_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include "compress/archive_check.h"
#include "compress/io.h"
#include "compress/kernels/packed.h"
#include "compress/ops/ops.h"
#include "compress/ops/script.h"
#include "temp_dir.h"

using namespace compress;
namespace fs = std::filesystem;

namespace {

int64_t data_records(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  int64_t n = 0;
  for (const auto& name : reader.getAllRecords())
    if (name.rfind("data/", 0) == 0) ++n;
  return n;
}

const void* storage_of(const torch::jit::Module& m, const std::string& name) {
  return m.attr(name).toTensor().storage().unsafeGetStorageImpl();
}

}  // namespace

TEST_CASE("save_module writes the buffers as one storage per dtype, and they load as they were", "[io]") {
  compress::testing::TempDir dir("save");
  torch::NoGradGuard no_grad;
  torch::jit::Module root("__torch__.Root");
  torch::jit::Module sub("__torch__.Sub");
  root.register_buffer("a", at::arange(3, at::kFloat));
  root.register_buffer("b", at::arange(5, at::kFloat) * 0.5);
  root.register_buffer("c", at::arange(7, at::kByte));
  root.register_buffer("d", at::arange(100, at::kByte).reshape({10, 10}));
  sub.register_buffer("e", at::full({2}, 7.0f));
  sub.register_buffer("n", at::tensor({int64_t{42}}));  // the only int64 buffer: keeps its own storage
  // Two buffers that share a storage keep sharing it, not coalesced.
  at::Tensor whole = at::arange(6, at::kFloat);
  sub.register_buffer("whole", whole);
  sub.register_buffer("part", whole.narrow(0, 2, 3));
  // Parameters are left alone.
  sub.register_parameter("w", at::ones({4}, at::kFloat).requires_grad_(), false);
  root.register_module("sub", sub);
  const void* a_before = storage_of(root, "a");

  const std::string path = dir.file("m.pt");
  save_module(root, path);
  // float (a, b, e), uint8 (c, d), the int64 one, the shared one, the parameter.
  CHECK(data_records(path) == 5);

  // The module saved is the caller's, unchanged.
  CHECK(storage_of(root, "a") == a_before);
  CHECK(root.attr("a").toTensor().storage_offset() == 0);

  torch::jit::Module loaded = torch::jit::load(path);
  for (const auto& [name, t] : root.named_buffers(/*recurse=*/true)) {
    INFO(name);
    at::Tensor l;
    for (const auto& b : loaded.named_buffers(true))
      if (b.name == name) l = b.value;
    REQUIRE(l.defined());
    CHECK(l.sizes() == t.sizes());
    CHECK(l.scalar_type() == t.scalar_type());
    CHECK(at::equal(l, t));
    // Each starts on a 64-byte boundary (the kernels read packed weights aligned).
    CHECK((reinterpret_cast<uintptr_t>(l.data_ptr()) % 64 == 0 || name == "sub.part"));
  }
  const torch::jit::Module lsub = loaded.attr("sub").toModule();
  CHECK(storage_of(loaded, "a") == storage_of(lsub, "e"));
  CHECK(storage_of(loaded, "c") == storage_of(loaded, "d"));
  CHECK(storage_of(loaded, "a") != storage_of(loaded, "c"));
  CHECK(storage_of(lsub, "whole") == storage_of(lsub, "part"));
  CHECK(storage_of(lsub, "whole") != storage_of(loaded, "a"));
  CHECK(lsub.attr("part").toTensor().storage_offset() == 2);
  CHECK(storage_of(lsub, "w") != storage_of(loaded, "a"));
  CHECK(lsub.attr("w").toTensor().requires_grad());
  // Saved again from the loaded module: the same records.
  const std::string again = dir.file("again.pt");
  save_module(loaded, again);
  CHECK(data_records(again) == 5);
}

TEST_CASE("save_module deflates an INT8 model's archive, leaves a float model's as LibTorch writes it, and both load alike",
          "[io]") {
  compress::testing::TempDir dir("save_deflate");
  torch::NoGradGuard no_grad;
  // How each record of the archive at `path` is kept: name -> zip method (0 stored, 8 deflated).
  auto methods = [](const std::string& path) {
    caffe2::serialize::FileAdapter file(path);
    std::map<std::string, uint16_t> m;
    for (const ZipEntry& e : check_zip(file, path)) m[e.name.substr(e.name.find('/') + 1)] = e.method;
    return m;
  };
  at::manual_seed(3);
  for (bool int8 : {false, true}) {
    INFO((int8 ? "INT8" : "float") << " model");
    torch::jit::Module root("__torch__.Root");
    // Values the way trained INT8 weights are: most small, so deflate finds something.
    at::Tensor w = at::randn({64, 64}).mul(20).round().clamp(-127, 127);
    root.register_buffer("w", int8 ? w.to(at::kChar) : w.to(at::kFloat));
    root.register_buffer("scale", at::rand({64}));
    root.define("def forward(self, x):\n    return self.w.float() * self.scale + x\n");
    const std::string path = dir.file(int8 ? "int8.pt" : "float.pt");
    save_module(root, path);
    const auto m = methods(path);
    REQUIRE(m.count("data.pkl"));
    int storages = 0;
    for (const auto& [name, method] : m) {
      INFO(name);
      if (name == "version" || name == ".data/version") continue;
      const bool storage_or_pickle = name.rfind("data/", 0) == 0 || name == "data.pkl";
      storages += name.rfind("data/", 0) == 0;
      if (storage_or_pickle) CHECK(method == (int8 ? 8 : 0));
    }
    CHECK(storages == (int8 ? 2 : 1));  // float buffers share one storage (save_module)
    // Smaller than LibTorch's own archive of the same module when deflated.
    std::ostringstream libtorch;
    root.save(libtorch);
    if (int8) CHECK(fs::file_size(path) < libtorch.str().size());
    // Loads through our checks and through LibTorch alone, to the same values.
    const at::Tensor x = at::randn({64, 64});
    const at::Tensor expected = root.forward({x}).toTensor();
    for (torch::jit::Module loaded : {load_module(path), torch::jit::load(path)}) {
      CHECK(at::equal(loaded.attr("w").toTensor(), root.attr("w").toTensor()));
      CHECK(at::equal(loaded.forward({x}).toTensor(), expected));
    }
  }
}

namespace {

int64_t layout_of(const at::Tensor& blob) { return blob.narrow(0, 0, 256).view(at::kLong)[3].item<int64_t>(); }

}  // namespace

TEST_CASE("save_module keeps dense packed weights in their storage form, which a loaded model packs for this CPU once",
          "[io]") {
  compress::testing::TempDir dir("save_stored");
  torch::NoGradGuard no_grad;
  at::manual_seed(5);
  // A depthwise convolution into a dense 3x3 one and a linear layer: all
  // three saved in the storage form; a 7-bit packing in its own.
  auto weight = [](std::vector<int64_t> shape) { return at::randint(-60, 60, shape, at::kChar); };
  auto scale = [](int64_t n) { return at::rand({n}) * 0.01 + 0.001; };
  torch::jit::Module m("__torch__.Int8Model");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_buffer("w_dw", ops::pack_conv2d_int8(weight({5, 1, 3, 3}), 3, 5, "auto"));
  m.register_buffer("s_dw", scale(5));
  m.register_buffer("w_conv", ops::pack_conv2d_int8(weight({21, 5, 3, 3}), 7, 1, "auto"));
  m.register_buffer("s_conv", scale(21));
  m.register_buffer("w_fc", ops::pack_linear_int8(weight({10, 21}), 2, "auto"));
  m.register_buffer("s_fc", scale(10));
  m.register_buffer("w_u7", ops::pack_linear_int8(weight({4, 10}), 0, "avx2_u7"));
  // Bytes that are not a packed weight: saved as they are.
  m.register_buffer("bytes", at::randint(0, 256, {300}, at::kByte));
  m.define(R"(
def forward(self, x: Tensor) -> Tensor:
    y = ops.compress.conv2d_int8(x, self.w_dw, self.s_dw, None, [1, 1], [1, 1], [1, 1], 7, False, 0)
    z = ops.compress.conv2d_int8(y, self.w_conv, self.s_conv, None, [1, 1], [0, 0], [1, 1], 2, True, 0)
    return ops.compress.linear_int8(z, self.w_fc, self.s_fc, None, 0, False, 6)
)",
           ops::script_resolver());
  const at::Tensor x = at::randint(0, 256, {2, 6, 6, 5}, at::kByte);
  const at::Tensor expected = m.forward({x}).toTensor();
  const at::Tensor packed_conv = m.attr("w_conv").toTensor();

  const std::string path = dir.file("int8.pt");
  save_module(m, path);
  CHECK(m.attr("w_conv").toTensor().is_same(packed_conv));  // the caller's module keeps its packing

  torch::jit::Module loaded = torch::jit::load(path);
  at::Tensor stored_conv = loaded.attr("w_conv").toTensor();
  CHECK(layout_of(stored_conv) == int64_t(kernels::Layout::stored_s8));
  CHECK(layout_of(loaded.attr("w_fc").toTensor()) == int64_t(kernels::Layout::stored_s8));
  CHECK(layout_of(loaded.attr("w_dw").toTensor()) == int64_t(kernels::Layout::stored_s8));
  CHECK(layout_of(loaded.attr("w_u7").toTensor()) == int64_t(kernels::Layout::stored_u7_s8));
  CHECK(stored_conv.numel() < packed_conv.numel());  // 21 x 45 row-major, not padded to the layout's blocks
  CHECK(at::equal(loaded.attr("bytes").toTensor(), m.attr("bytes").toTensor()));
  CHECK(ops::is_packed_weight(packed_conv));
  CHECK(ops::is_packed_weight(stored_conv));
  CHECK_FALSE(ops::is_packed_weight(m.attr("bytes").toTensor()));
  CHECK_FALSE(ops::is_packed_weight(packed_conv.narrow(0, 0, 200)));  // shorter than the header
  CHECK_FALSE(ops::is_packed_weight(m.attr("s_conv").toTensor()));
  CHECK(ops::packed_weight_info(stored_conv).nonzeros == ops::packed_weight_info(packed_conv).nonzeros);

  const int64_t cached = ops::repacked_weights_cached();
  CHECK(at::equal(loaded.forward({x}).toTensor(), expected));
  CHECK(ops::repacked_weights_cached() == cached + 3);  // the two convolutions' and the linear layer's packings
  CHECK(at::equal(loaded.forward({x}).toTensor(), expected));
  CHECK(ops::repacked_weights_cached() == cached + 3);  // kept: packed once
  // Written in place (its version changes): packed again, not read stale.
  at::Tensor changed = stored_conv.clone();
  {
    // Zero the first output channel's weights (the storage form has no
    // compensation to match): channel 0 of the convolution's result becomes
    // the ReLU of zero.
    auto* h = changed.data_ptr<uint8_t>();
    const auto* fields = reinterpret_cast<const int64_t*>(h);
    std::memset(h + fields[kernels::kDataOffset], 0, 45);
  }
  loaded.attr("w_conv").toTensor().copy_(changed);
  const at::Tensor after_write = loaded.forward({x}).toTensor();
  CHECK_FALSE(at::equal(after_write, expected));
  CHECK(ops::repacked_weights_cached() == cached + 3);
  // Saved again from the loaded module: the stored forms stay as they are.
  const std::string again = dir.file("again.pt");
  save_module(loaded, again);
  CHECK(at::equal(torch::jit::load(again).forward({x}).toTensor(), after_write));
  // Freed with the model (its buffers share one storage, which stored_conv
  // would keep).
  stored_conv.reset();
  loaded = torch::jit::Module();
  CHECK(ops::repacked_weights_cached() == cached);
  // Packed in the module itself: each weight held once, nothing kept aside.
  torch::jit::Module packed_in_place = torch::jit::load(again);
  CHECK(ops::pack_stored_weights(packed_in_place) == 4);
  CHECK(layout_of(packed_in_place.attr("w_conv").toTensor()) == layout_of(packed_conv));
  CHECK(at::equal(packed_in_place.attr("w_u7").toTensor(), m.attr("w_u7").toTensor()));
  CHECK(at::equal(packed_in_place.forward({x}).toTensor(), after_write));
  CHECK(ops::repacked_weights_cached() == cached);
  CHECK(ops::pack_stored_weights(packed_in_place) == 0);
  // load_module does the same.
  torch::jit::Module via_load_module = load_module(again);
  CHECK(layout_of(via_load_module.attr("w_conv").toTensor()) == layout_of(packed_conv));
  CHECK(at::equal(via_load_module.forward({x}).toTensor(), after_write));
  CHECK(ops::repacked_weights_cached() == cached);
}
