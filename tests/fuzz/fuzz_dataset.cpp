// Fuzz harness: arbitrary bytes as a tensor dataset file (what --data FILE and
// --calib FILE read) through load_tensor_dataset: LibTorch's zip reader and
// unpickler behind load_module, then our checks of the attributes. An
// accepted dataset must be what the loader promises. compress::Error(BadInput)
// is the expected refusal; anything else (another exception, a crash, a
// sanitizer report) is a finding.
#include <cstdint>
#include <cstdio>
#include <string>

#include "compress/data/dataset.h"
#include "compress/error.h"
#include "fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz_input_file("dataset", data, size);
  if (path.empty()) return 0;
  try {
    const compress::data::TensorDataset ds = compress::data::load_tensor_dataset(path);
    const bool as_promised = ds.inputs.scalar_type() == at::kFloat && ds.inputs.is_contiguous() &&
                             ds.labels.scalar_type() == at::kLong && ds.labels.dim() == 1 &&
                             ds.inputs.size(0) == ds.labels.size(0) && ds.num_classes >= 1;
    if (!as_promised) __builtin_trap();
    // Touch every element, as training would.
    if (ds.labels.numel() && (ds.labels.min().item<int64_t>() < 0 ||
                              ds.labels.max().item<int64_t>() >= ds.num_classes))
      __builtin_trap();
    (void)ds.inputs.sum().item<float>();
  } catch (const compress::Error& e) {
    if (e.kind() != compress::ErrorKind::BadInput) __builtin_trap();
  }
  std::remove(path.c_str());
  return 0;
}
