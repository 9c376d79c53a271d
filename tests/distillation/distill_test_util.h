#pragma once
// A short, quiet, single-thread training run for the distillation tests,
// and the check of a command's refusals.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "compress/train/trainer.h"
#include "train/cli_run.h"

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

// Each case's arguments appended to `command` (a CLI command line): exit 2,
// one line holding the case's text, and `out` not written.
inline void check_refused(const std::string& command, const std::vector<std::pair<std::string, std::string>>& cases,
                          const std::string& out) {
  for (const auto& [args, text] : cases) {
    cli_test::Run r = cli_test::run(command + " " + args);
    INFO(args << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_THAT(r.out, Catch::Contains(text));
    CHECK_FALSE(std::filesystem::exists(out));
  }
}

}  // namespace distill_test
