// Sparsity with the C++ API, then sparse INT8 (what `compress sparsify` and
// `compress quantize` do):
//   example_sparse_int8 IN.pt OUT.int8.pt [DATA] [SPARSITY]
//     DATA: fashion-mnist (default) or a tensor dataset file; SPARSITY: default 0.9
// Prunes 1x4 blocks of every linear / conv weight but the classifier's with
// the AGP schedule over one epoch of fine-tuning, quantizes with the sparse
// format chosen per layer by timing, and prints each layer's format and the
// test top-1 of the float sparse and the INT8 model.
#include <iostream>

#include <compress/cpu_block_cache.h>
#include <compress/error.h>
#include <compress/io.h>
#include <compress/ir/export.h>
#include <compress/ir/import.h>
#include <compress/pruning/sparsity.h>
#include <compress/quantization/quantize.h>
#include <compress/train/evaluate.h>
#include <compress/train/trainer.h>

#include "../quantization/common.h"

using namespace compress;

int main(int argc, char** argv) {
  // Training and evaluation loops reuse their freed blocks (several times faster; docs/performance.md).
  compress::install_cpu_block_cache_from_env();
  if (argc < 3 || argc > 5) {
    std::cerr << "usage: example_sparse_int8 IN.pt OUT.int8.pt [fashion-mnist|DATA.pt] [SPARSITY]\n";
    return 2;
  }
  try {
    const std::string data = argc > 3 ? argv[3] : "fashion-mnist";
    const double target = argc > 4 ? std::stod(argv[4]) : 0.9;
    data::TensorDataset train = example::load_split(data, "train"), test = example::load_split(data, "test");

    // 1. Which weights: every conv/linear layer but the last (the classifier).
    Graph g = import_module(load_module(argv[1]));
    std::vector<sparsity::SparseLayer> all = sparsity::select_layers(g, {/*include_first_last=*/true, {}});
    std::vector<sparsity::SparseLayer> layers(all.begin(), all.end() - 1);

    // 2. Fine-tune one epoch while the AGP schedule ramps the 1x4 masks to the target.
    torch::jit::Module model = export_module(g);
    train::TrainConfig cfg;
    cfg.epochs = 1;
    cfg.optimizer.lr = 0.01;
    cfg.threads = 1;
    const int64_t steps = std::max<int64_t>(1, train.size() / cfg.batch_size);
    auto agp = std::make_shared<sparsity::SparsityCallback>(layers, sparsity::parse_pattern("1x4"), false,
                                                            sparsity::agp_over(target, steps, 0.75, 10));
    model.train();
    train::Trainer trainer(model, cfg);
    trainer.add_callback(agp);
    trainer.fit(train);
    model.eval();

    // 3. INT8, each sparse layer packed for the 1x4 kernel where it is measured faster here.
    Graph q = import_module(model);
    std::vector<int64_t> shape{32};
    for (int64_t d : train.inputs.sizes().slice(1)) shape.push_back(d);
    q.set_example_inputs({InputSpec{shape}});
    quant::QuantizeReport report = quant::quantize_static(q, example::calibration(train, 32, 8), {});
    torch::jit::Module int8 = export_module(q);
    save_module(int8, argv[2], argv[1]);
    for (const auto& l : report.layers)
      std::cout << l.name << ": " << l.weight_format << ", " << 100 * l.weight_sparsity << "% zero (" << l.format_reason
                << ")\n";
    std::cout << "test top-1: float sparse " << 100 * train::evaluate(model, test).top1 << "%, INT8 "
              << 100 * train::evaluate(int8, test).top1 << "%\n";
  } catch (const Error& e) {
    std::cerr << "example_sparse_int8: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
