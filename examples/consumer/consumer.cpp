// Uses the installed toolkit: import a TorchScript model, fold its batch
// norms, report its size, export and save it.
//   consumer IN.pt OUT.pt C,H,W
#include <iostream>

#include <compress/analysis/profile.h>
#include <compress/error.h>
#include <compress/io.h>
#include <compress/ir/export.h>
#include <compress/ir/import.h>
#include <compress/passes/fold_batch_norm.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: consumer IN.pt OUT.pt N,C,H,W\n";
    return 2;
  }
  try {
    compress::Graph graph = compress::import_module(compress::load_module(argv[1]));
    int folded = compress::fold_batch_norm(graph).changed;
    auto profile = compress::profile_model(graph, {compress::parse_shape(argv[3], "input shape")});
    compress::save_module(compress::export_module(graph), argv[2], argv[1]);
    std::cout << "folded " << folded << " batch norms; " << profile.total_params << " parameters, "
              << profile.total_macs << " MACs\n";
  } catch (const compress::Error& e) {
    std::cerr << "consumer: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
