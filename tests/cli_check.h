#pragma once
// Running the compress CLI from a test with stdout and stderr apart, and the
// contract every bad input meets: exit code 2 and one clear line on stderr.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "test_paths.h"

namespace compress::testing {

struct CliResult {
  int code = -1;
  std::string out, err;
};

// Runs a program (`program` is its path and arguments); stderr goes through
// `stderr_file` (a path in the case's scratch folder).
inline CliResult run_program(const std::string& program, const std::string& stderr_file) {
  const std::string cmd = program + " 2>" + stderr_file;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(stderr_file, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  return r;
}

// Runs `compress ARGS`.
inline CliResult run_cli(const std::string& args, const std::string& stderr_file) {
  return run_program(std::string(COMPRESS_CLI) + " " + args, stderr_file);
}

// The contract for bad input: exit 2, exactly one line on stderr that
// contains `expect`, nothing of LibTorch's internals.
inline void check_bad_input(const CliResult& r, const std::string& expect) {
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(expect) != std::string::npos);
  CHECK(r.err.find("terminate called") == std::string::npos);
  CHECK(r.err.find("Exception raised from") == std::string::npos);
  CHECK(r.err.find("frame #") == std::string::npos);
}

}  // namespace compress::testing
