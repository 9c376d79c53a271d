#pragma once
// The run the checkpoint harness resumes: the tiny model of the trainer
// tests on 16 samples, 4 batches per epoch, 2 epochs. The seeds
// (tests/fuzz/corpus/checkpoint) are checkpoints of exactly this run, so
// mutations of them get past the settings check to the field checks.
#include <string>

#include "../train/tiny.h"

namespace fuzz_checkpoint {

inline compress::train::TrainResult run(const std::string& checkpoint, bool resume, int64_t stop_after_steps) {
  static const auto data = tiny::blobs(16, 1);
  auto cfg = tiny::train_config(3);
  cfg.epochs = 2;
  cfg.batch_size = 4;
  cfg.threads = 1;
  cfg.fingerprint = "fuzz";
  cfg.checkpoint_path = checkpoint;
  cfg.resume = resume;
  cfg.stop_after_steps = stop_after_steps;
  return compress::train::Trainer(tiny::make_model(7), cfg).fit(data);
}

}  // namespace fuzz_checkpoint
