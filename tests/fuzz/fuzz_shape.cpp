// Fuzz harness: arbitrary text as a CLI shape (--input-shape) through
// parse_shape. A shape it accepts must be positive integers, one per
// comma-separated field; a refusal must be compress::Error(BadInput).
#include <cstdint>
#include <string>

#include "compress/analysis/profile.h"
#include "compress/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const compress::Shape s = compress::parse_shape(text, "--input-shape");
    size_t fields = 1;
    for (char c : text) fields += c == ',';
    if (s.size() != fields) __builtin_trap();
    for (int64_t v : s)
      if (v <= 0) __builtin_trap();
  } catch (const compress::Error& e) {
    if (e.kind() != compress::ErrorKind::BadInput) __builtin_trap();
  }
  return 0;
}
