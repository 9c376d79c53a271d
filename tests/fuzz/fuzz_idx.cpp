// Fuzz harness: arbitrary bytes as an IDX file (plain or gzip) through
// read_idx. compress::Error(BadInput) is the expected refusal; anything else
// (another exception, a crash, a sanitizer report) is a finding.
#include <cstdint>
#include <cstdio>
#include <string>

#include "compress/data/dataset.h"
#include "compress/error.h"
#include "fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz_input_file("idx", data, size);
  if (path.empty()) return 0;
  try {
    at::Tensor t = compress::data::read_idx(path);
    if (t.numel() > 0 && t.data_ptr<uint8_t>() == nullptr) __builtin_trap();
  } catch (const compress::Error& e) {
    if (e.kind() != compress::ErrorKind::BadInput) __builtin_trap();
  }
  std::remove(path.c_str());
  return 0;
}
