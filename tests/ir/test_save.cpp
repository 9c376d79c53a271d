// save_module: what the archive holds (one storage per dtype for the
// buffers) and that loading gives the same module.
#include <catch2/catch.hpp>

#include <set>

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include "compress/io.h"
#include "temp_dir.h"

using namespace compress;

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
