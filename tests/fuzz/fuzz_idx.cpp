// Fuzz harness: arbitrary bytes as an IDX file (plain or gzip) through
// read_idx. compress::Error(BadInput) is the expected refusal; anything else
// (another exception, a crash, a sanitizer report) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "compress/data/dataset.h"
#include "compress/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // read_idx takes a path: one file per process, rewritten for each input.
  static const std::string path = "/tmp/compress_fuzz_idx_" + std::to_string(::getpid()) + ".idx";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    at::Tensor t = compress::data::read_idx(path);
    if (t.numel() > 0 && t.data_ptr<uint8_t>() == nullptr) __builtin_trap();
  } catch (const compress::Error& e) {
    if (e.kind() != compress::ErrorKind::BadInput) __builtin_trap();
  }
  std::remove(path.c_str());
  return 0;
}
