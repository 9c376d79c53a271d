// Distils a trained classifier into a zoo CNN of half its width with the C++
// API, then compares the student with the teacher on the test set:
//
//   distill_example TEACHER.pt fashion-mnist|DATA.pt STUDENT.pt [EPOCHS]
//
// The same as `compress distill --teacher TEACHER.pt --arch cnn --width 0.5
// --loss kd,at --feature features.10:relu=features.10:relu`, in about
// thirty lines.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <compress/cpu_block_cache.h>
#include <compress/data/dataset.h>
#include <compress/distillation/distill.h>
#include <compress/error.h>
#include <compress/io.h>
#include <compress/ir/import.h>
#include <compress/models/zoo.h>
#include <compress/train/evaluate.h>

using namespace compress;

int main(int argc, char** argv) {
  // Training and evaluation loops reuse their freed blocks (several times faster; docs/performance.md).
  compress::install_cpu_block_cache_from_env();
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s TEACHER.pt fashion-mnist|DATA.pt STUDENT.pt [EPOCHS]\n", argv[0]);
    return 2;
  }
  try {
    const std::string data = argv[2];
    const bool fmnist = data == "fashion-mnist";
    data::TensorDataset train = fmnist ? data::load_fashion_mnist("train") : data::load_tensor_dataset(data);
    data::TensorDataset test = fmnist ? data::load_fashion_mnist("test") : train;
    torch::jit::Module teacher = load_module(argv[1]);

    distillation::DistillOptions o;  // KD at T = 4, alpha = 0.9 ...
    o.losses = {distillation::Loss::KD, distillation::Loss::Attention};  // ... plus attention transfer
    o.features = {{"features.10:relu", "features.10:relu"}};             // on the last conv block's maps
    Graph student = import_module(models::build("cnn", /*seed=*/0, train.num_classes, /*width=*/0.5).module);
    distillation::Distiller distiller(teacher, std::move(student), o, {1, 28, 28});

    train::TrainConfig cfg;
    cfg.epochs = argc > 4 ? std::atoi(argv[4]) : 1;
    cfg.optimizer.lr = 0.05;
    cfg.optimizer.weight_decay = 5e-4;
    cfg.optimizer.nesterov = true;
    distillation::DistillResult r = distiller.fit(train, cfg);
    torch::jit::Module trained = distiller.student_module();
    save_module(trained, argv[3]);

    std::printf("teacher %.2f%%, student %.2f%% (%lld -> %lld parameters), last epoch kd %.4f attention %.6f\n",
                100 * train::evaluate(teacher, test).top1, 100 * train::evaluate(trained, test).top1,
                (long long)models::count_parameters(teacher), (long long)models::count_parameters(trained),
                r.terms.back().kd, r.terms.back().attention);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "distill_example: %s\n", e.what());
    return e.kind() == ErrorKind::BadInput ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distill_example: %s\n", first_line_of(e).c_str());
    return 1;
  }
}
