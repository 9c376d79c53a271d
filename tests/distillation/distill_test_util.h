#pragma once
// A short, quiet, single-thread training run for the distillation tests.
#include "compress/train/trainer.h"

namespace distill_test {

inline compress::train::TrainConfig quick_config(int64_t epochs) {
  compress::train::TrainConfig c;
  c.epochs = epochs;
  c.batch_size = 32;
  c.optimizer.lr = 0.05;
  c.optimizer.nesterov = true;
  c.threads = 1;
  c.quiet = true;
  return c;
}

}  // namespace distill_test
