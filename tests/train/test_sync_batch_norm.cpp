// The synchronised batch norm op against aten::batch_norm in one process
// (its sums are then this process's alone): outputs, running statistics and
// gradients; the training twin of a module shares its tensors and names the
// op only in its own graphs. Over two ranks: test_distributed.cpp.
#include <catch2/catch.hpp>

#include <torch/csrc/jit/api/function_impl.h>

#include "compress/models/zoo.h"
#include "compress/train/sync_batch_norm.h"
#include "tiny.h"

using compress::train::sync_batch_norm;
using compress::train::with_sync_batch_norm;

namespace {

struct BatchNormRun {
  at::Tensor y, dx, dw, db, running_mean, running_var;
};

// One training-mode call of `fn` (aten's or ours) and the gradients of a
// fixed random projection of its output.
template <typename Fn>
BatchNormRun run(Fn fn, const at::Tensor& x0, const at::Tensor& w0, const at::Tensor& b0, const at::Tensor& probe) {
  BatchNormRun r;
  at::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true),
             b = b0.clone().requires_grad_(true);
  r.running_mean = at::full({x0.size(1)}, 0.5);
  r.running_var = at::full({x0.size(1)}, 2.0);
  r.y = fn(x, w, b, r.running_mean, r.running_var);
  (r.y * probe).sum().backward();
  r.dx = x.grad();
  r.dw = w.grad();
  r.db = b.grad();
  return r;
}

void check_close(const at::Tensor& a, const at::Tensor& b, const char* what) {
  INFO(what << ": max |diff| " << (a - b).abs().max().item<double>());
  CHECK(at::allclose(a, b, 1e-4, 1e-5));
}

}  // namespace

TEST_CASE("sync batch norm in one process equals aten batch norm: output, statistics, gradients", "[syncbn]") {
  for (const std::vector<int64_t> shape : {std::vector<int64_t>{16, 6}, {4, 5, 7}, {3, 4, 6, 5}}) {
    at::manual_seed(11);
    at::Tensor x = at::randn(shape) * 3 + 1, w = at::rand({shape[1]}) + 0.5, b = at::randn({shape[1]});
    at::Tensor probe = at::randn(shape);
    auto aten = [](auto x, auto w, auto b, auto rm, auto rv) {
      return at::batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, false);
    };
    auto ours = [](auto x, auto w, auto b, auto rm, auto rv) {
      return sync_batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, false);
    };
    BatchNormRun a = run(aten, x, w, b, probe), o = run(ours, x, w, b, probe);
    INFO("input shape of rank " << shape.size());
    check_close(a.y, o.y, "output");
    check_close(a.running_mean, o.running_mean, "running mean");
    check_close(a.running_var, o.running_var, "running variance");
    check_close(a.dx, o.dx, "input gradient");
    check_close(a.dw, o.dw, "weight gradient");
    check_close(a.db, o.db, "bias gradient");
    // The statistics moved: the comparison is not of two untouched buffers.
    CHECK_FALSE(at::allclose(o.running_mean, at::full({shape[1]}, 0.5)));
  }
  // Eval mode: the running statistics, untouched.
  at::Tensor x = at::randn({4, 3, 2, 2}), rm = at::randn({3}), rv = at::rand({3}) + 1;
  at::Tensor rm0 = rm.clone();
  CHECK(at::equal(sync_batch_norm(x, {}, {}, rm, rv, false, 0.1, 1e-5, false),
                  at::batch_norm(x, {}, {}, rm, rv, false, 0.1, 1e-5, false)));
  CHECK(at::equal(rm, rm0));
}

TEST_CASE("the training twin shares the module's tensors and alone calls the sync op", "[syncbn]") {
  torch::jit::Module m = compress::models::build("resnet", 0).module;
  int replaced = 0;
  torch::jit::Module twin = with_sync_batch_norm(m, &replaced);
  int64_t batch_norms = 0;
  for (const auto& sub : m.modules()) {
    if (sub.type()->name()->qualifiedName().find("BatchNorm") != std::string::npos) ++batch_norms;
  }
  CHECK(batch_norms > 0);
  CHECK(replaced >= 1);  // one per distinct graph: batch norms of one class share it
  // The same tensors: an edit of the original shows in the twin.
  auto p = *m.named_parameters().begin();
  auto q = *twin.named_parameters().begin();
  CHECK(p.name == q.name);
  CHECK(p.value.data_ptr() == q.value.data_ptr());
  // Same outputs and running statistics in one process (train mode).
  at::manual_seed(3);
  at::Tensor x = at::randn({4, 1, 28, 28});
  torch::jit::Module reference = m.deepcopy();
  reference.train(true);
  twin.train(true);
  at::Tensor want = reference.forward({x}).toTensor(), got = twin.forward({x}).toTensor();
  CHECK(at::allclose(want, got, 1e-4, 1e-5));
  auto rb = reference.named_buffers().begin();
  auto mb = m.named_buffers().begin();
  CHECK(at::allclose((*rb).value, (*mb).value, 1e-5, 1e-6));  // updated through the twin, in m's tensors
  // Only the twin's graphs call the op.
  auto calls = [](const torch::jit::Module& mod) {
    std::string text;
    for (const auto& sub : mod.modules())
      for (const auto& method : sub.get_methods()) text += torch::jit::toGraphFunction(method.function()).graph()->toString();
    return text.find("compress_train::sync_batch_norm") != std::string::npos;
  };
  CHECK(calls(twin));
  CHECK_FALSE(calls(m));
  // A model with no batch norm: nothing to replace.
  int none = -1;
  with_sync_batch_norm(compress::models::build("vit", 0).module, &none);
  CHECK(none == 0);
}
