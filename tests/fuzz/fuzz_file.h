#pragma once
// For harnesses whose code under test reads a path: the input's bytes in a
// file of this process (rewritten for each input), or "" when it cannot be written.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

inline std::string fuzz_input_file(const char* tag, const uint8_t* data, size_t size) {
  const std::string path = "/tmp/compress_fuzz_" + std::string(tag) + "_" + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return "";
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}
