// Fuzz harness: arbitrary bytes as a saved TorchScript model, loaded the way
// every command loads one (load_module: LibTorch's zip reader, unpickler and
// TorchScript compiler behind our checks) and then imported into our IR
// (import_module). compress::Error(BadInput) is the expected refusal; anything
// else (another exception, a crash, a sanitizer report) is a finding.
#include <cstdint>
#include <cstdio>
#include <string>

#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/import.h"
#include "fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz_input_file("import", data, size);
  if (path.empty()) return 0;
  try {
    const torch::jit::Module m = compress::load_module(path);
    const compress::Graph g = compress::import_module(m);
    if (g.num_nodes() > 0 && g.nodes().begin() == g.nodes().end()) __builtin_trap();
  } catch (const compress::Error& e) {
    if (e.kind() != compress::ErrorKind::BadInput) __builtin_trap();
  }
  std::remove(path.c_str());
  return 0;
}
