// PQK with the C++ API: prunes a trained classifier to half its MACs while
// training it with fake quantization, distils the pruned student from the
// unpruned network with the removed weights restored, and saves the INT8
// model:
//
//   pqk_example MODEL.pt fashion-mnist|DATA.pt OUT.pt [EPOCHS]
//
// The same as `compress pqk MODEL.pt -o OUT.pt --data ... --target-macs 0.5
// --epochs EPOCHS --finetune-epochs EPOCHS`.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <compress/cpu_block_cache.h>
#include <compress/data/dataset.h>
#include <compress/distillation/pqk.h>
#include <compress/error.h>
#include <compress/io.h>
#include <compress/ir/export.h>
#include <compress/ir/import.h>
#include <compress/train/evaluate.h>

using namespace compress;

int main(int argc, char** argv) {
  // Training and evaluation loops reuse their freed blocks (several times faster; docs/performance.md).
  compress::install_cpu_block_cache_from_env();
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.pt fashion-mnist|DATA.pt OUT.pt [EPOCHS]\n", argv[0]);
    return 2;
  }
  try {
    const std::string data = argv[2];
    const bool fmnist = data == "fashion-mnist";
    data::TensorDataset train = fmnist ? data::load_fashion_mnist("train") : data::load_tensor_dataset(data);
    data::TensorDataset test = fmnist ? data::load_fashion_mnist("test") : train;
    train.inputs = train.inputs.to(at::kFloat);
    test.inputs = test.inputs.to(at::kFloat);
    torch::jit::Module model = load_module(argv[1]);

    // The fake quantizers start from the ranges of the first (up to 8) batches.
    at::Tensor x = train.inputs;
    const int64_t batches = std::max<int64_t>(1, std::min<int64_t>(8, x.size(0) / 128));
    quant::CalibrationData calib{batches, [x](int64_t i) { return x.narrow(0, i * 128, std::min<int64_t>(128, x.size(0))); }};
    train::TrainConfig cfg;  // both phases: SGD with cosine decay
    cfg.epochs = argc > 4 ? std::atoi(argv[4]) : 1;
    cfg.optimizer.lr = 0.01;
    cfg.schedule.kind = "cosine";
    distillation::PqkOptions o;  // 50% of the MACs, 4 masking steps, teacher repair, KD at T = 4, alpha = 0.9
    distillation::PqkResult r = distillation::pqk(import_module(model), o, {1, 28, 28}, calib, train, cfg, cfg);
    torch::jit::Module int8 = export_module(quant::convert_qat(r.student));
    save_module(int8, argv[3]);

    torch::jit::Module teacher = export_module(r.teacher);
    std::printf("float %.2f%%, teacher %.2f%%, INT8 student %.2f%% at %.1f%% of the MACs\n",
                100 * train::evaluate(model, test).top1, 100 * train::evaluate(teacher, test).top1,
                100 * train::evaluate(int8, test).top1,
                100.0 * double(r.prune.macs_after) / double(r.prune.macs_before));
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "pqk_example: %s\n", e.what());
    return e.kind() == ErrorKind::BadInput ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pqk_example: %s\n", first_line_of(e).c_str());
    return 1;
  }
}
