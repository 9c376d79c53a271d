#pragma once
// Running the compress CLI from a test, and a small synthetic dataset file for
// it to train on.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "compress/data/dataset.h"
#include "temp_dir.h"
#include "test_paths.h"

extern "C" char** environ;

namespace cli_test {

struct Run {
  int code;
  std::string out;
};

// Runs `compress ARGS`, stdout and stderr together; `env` (e.g. "env X=1")
// goes before the command.
inline Run run(const std::string& args, const std::string& env = "") {
  std::string cmd = (env.empty() ? "" : env + " ") + COMPRESS_CLI + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Starts `compress ARGS...` in the background with stdout and stderr in
// `log`; returns its pid (-1 when it could not be started).
inline pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv_s = {COMPRESS_CLI};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// 28x28 images whose class is which quadrant is bright: learnable in one epoch.
inline compress::data::TensorDataset quadrant_set(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  compress::data::TensorDataset ds;
  ds.labels = at::randint(0, 4, {n}, gen);
  ds.inputs = at::rand({n, 1, 28, 28}, gen) * 0.3;
  for (int64_t i = 0; i < n; ++i) {
    int64_t q = ds.labels[i].item<int64_t>();
    ds.inputs[i].narrow(1, (q / 2) * 14, 14).narrow(2, (q % 2) * 14, 14).add_(0.7);
  }
  ds.num_classes = 10;
  return ds;
}

// The quadrant set saved as a tensor dataset file in `dir`.
inline std::string make_set(const compress::testing::TempDir& dir, const std::string& name, int64_t n,
                            uint64_t seed) {
  compress::data::TensorDataset ds = quadrant_set(n, seed);
  std::string p = dir.file(name);
  compress::data::save_tensor_dataset(ds, p);
  return p;
}

}  // namespace cli_test
