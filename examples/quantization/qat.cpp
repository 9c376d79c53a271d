// Quantization-aware training with the C++ API (what `compress qat` does).
//   example_qat IN.pt OUT.int8.pt [DATA [EPOCHS [LIMIT]]]
//     DATA: fashion-mnist (default) or a tensor dataset file; LIMIT: train on the first N samples
// The steps are the ones a distillation or prune + QAT pipeline reuses: insert
// fake quantization (initialised by PTQ calibration), train the exported
// module with any loss (Trainer::set_loss), copy the trained tensors back,
// convert to the real INT8 model.
#include <iostream>

#include <compress/cpu_block_cache.h>
#include <compress/error.h>
#include <compress/io.h>
#include <compress/ir/export.h>
#include <compress/ir/import.h>
#include <compress/quantization/qat.h>
#include <compress/train/trainer.h>

#include "common.h"

using namespace compress;

int main(int argc, char** argv) {
  // Training and evaluation loops reuse their freed blocks (several times faster; docs/performance.md).
  compress::install_cpu_block_cache_from_env();
  if (argc < 3 || argc > 6) {
    std::cerr << "usage: example_qat IN.pt OUT.int8.pt [fashion-mnist|DATA.pt [EPOCHS [LIMIT]]]\n";
    return 2;
  }
  try {
    const std::string data = argc > 3 ? argv[3] : "fashion-mnist";
    const int64_t epochs = argc > 4 ? std::stoll(argv[4]) : 1, limit = argc > 5 ? std::stoll(argv[5]) : 0;
    data::TensorDataset train = data::take(example::load_split(data, "train"), limit);
    data::TensorDataset test = example::load_split(data, "test");

    // 1. Fake quantization where the INT8 model will round (batch norm folded first).
    Graph g = import_module(load_module(argv[1]));
    std::vector<int64_t> shape{64};
    for (int64_t d : train.inputs.sizes().slice(1)) shape.push_back(d);
    g.set_example_inputs({InputSpec{shape}});
    quant::QatOptions options;
    options.method = quant::QatMethod::Lsq;  // learned scales; QatMethod::Ste for running ranges
    quant::QatModel qat = quant::prepare_qat(g, example::calibration(train, 64, 8), options);

    // 2. Train the exported fake-quant module: scales in their own group, the callback keeps them valid.
    train::TrainConfig cfg;
    cfg.epochs = epochs;
    cfg.batch_size = 128;
    cfg.optimizer.lr = 0.005;
    cfg.optimizer.groups.push_back(qat.scale_group(0.005));
    cfg.threads = 2;
    train::Trainer trainer(export_module(qat.graph, quant::qat_export_options(qat)), cfg);
    trainer.add_callback(quant::qat_callback(qat));
    trainer.fit(train);

    // 3. Back into the graph, and the real INT8 model.
    quant::load_trained(qat, trainer.module());
    quant::QuantizeReport report;
    Graph int8_graph = quant::convert_qat(qat, &report);
    torch::jit::Module fake = export_module(qat.graph), int8 = export_module(int8_graph);
    save_module(int8, argv[2], argv[1]);

    quant::Agreement a = quant::compare_classifiers(fake, int8, test.inputs, test.labels);
    std::cout << "test top-1: fake-quant " << a.top1_a << "%, INT8 " << a.top1_b << "%; argmax agrees on "
              << 100 * a.argmax_agree << "% of " << a.count << " samples\n";
  } catch (const Error& e) {
    std::cerr << "example_qat: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
