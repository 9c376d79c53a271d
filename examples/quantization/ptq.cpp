// Post-training static quantization with the C++ API (what `compress quantize` does).
//   example_ptq IN.pt OUT.int8.pt [DATA]      DATA: fashion-mnist (default) or a tensor dataset file
// Calibrates on 8 batches of 64 training images, converts to compress::conv2d_int8 /
// linear_int8 ops, and prints the test top-1 of the float and the INT8 model.
#include <iostream>

#include <compress/cpu_block_cache.h>
#include <compress/error.h>
#include <compress/io.h>
#include <compress/ir/export.h>
#include <compress/ir/import.h>
#include <compress/quantization/quantize.h>
#include <compress/train/evaluate.h>

#include "common.h"

using namespace compress;

int main(int argc, char** argv) {
  // Training and evaluation loops reuse their freed blocks (several times faster; docs/performance.md).
  compress::install_cpu_block_cache_from_env();
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: example_ptq IN.pt OUT.int8.pt [fashion-mnist|DATA.pt]\n";
    return 2;
  }
  try {
    const std::string data = argc > 3 ? argv[3] : "fashion-mnist";
    data::TensorDataset train = example::load_split(data, "train"), test = example::load_split(data, "test");
    torch::jit::Module float_model = load_module(argv[1]);

    Graph g = import_module(float_model);
    std::vector<int64_t> shape{64};
    for (int64_t d : train.inputs.sizes().slice(1)) shape.push_back(d);
    g.set_example_inputs({InputSpec{shape}});
    quant::QuantizeOptions options;  // percentile calibration, nothing excluded
    quant::QuantizeReport report = quant::quantize_static(g, example::calibration(train, 64, 8), options);

    torch::jit::Module int8 = export_module(g);
    save_module(int8, argv[2], argv[1]);
    std::cout << "output SQNR against float " << report.output_sqnr_db << " dB, size " << report.bytes_before
              << " -> " << report.bytes_after << " bytes\n"
              << "test top-1: float " << 100 * train::evaluate(float_model, test).top1 << "%, INT8 "
              << 100 * train::evaluate(int8, test).top1 << "%\n";
  } catch (const Error& e) {
    std::cerr << "example_ptq: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
