// Fuzz harness: arbitrary bytes as a JSON pipeline recipe through
// load_recipe (the JSON parser, then every field check of parse_recipe and of
// each stage kind). An accepted recipe's stages must all be parsed and report
// their options (what the runner hashes). compress::Error(BadInput) is the
// expected refusal; anything else (another exception, a crash, a sanitizer
// report) is a finding.
#include <cstdint>
#include <cstdio>
#include <string>

#include "compress/error.h"
#include "compress/pipeline/recipe.h"
#include "fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz_input_file("recipe", data, size);
  if (path.empty()) return 0;
  try {
    const compress::pipeline::Recipe r = compress::pipeline::load_recipe(path);
    for (const auto& s : r.stages) {
      if (!s.stage) __builtin_trap();
      (void)s.stage->options().dump();
    }
  } catch (const compress::Error& e) {
    if (e.kind() != compress::ErrorKind::BadInput) __builtin_trap();
  }
  std::remove(path.c_str());
  return 0;
}
