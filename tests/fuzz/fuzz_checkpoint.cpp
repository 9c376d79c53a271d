// Fuzz harness: arbitrary bytes as a training checkpoint, resumed by the
// trainer (Trainer::load_checkpoint's field checks, then training on from
// it when accepted). compress::Error(BadInput) is the expected refusal, and
// "training diverged" the expected end of a run from extreme weights;
// anything else (another exception, a crash, a sanitizer report) is a finding.
#include <cstdint>
#include <cstdio>
#include <string>

#include "checkpoint_run.h"
#include "compress/error.h"
#include "fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz_input_file("checkpoint", data, size);
  if (path.empty()) return 0;
  try {
    fuzz_checkpoint::run(path, /*resume=*/true, /*stop_after_steps=*/-1);
  } catch (const compress::Error& e) {
    // An accepted checkpoint with finite but extreme weights may still make
    // training diverge: the trainer's defined refusal (Failure, exit code 1).
    const bool diverged = std::string(e.what()).rfind("training diverged", 0) == 0;
    if (e.kind() != compress::ErrorKind::BadInput && !diverged) __builtin_trap();
  }
  std::remove(path.c_str());
  return 0;
}
