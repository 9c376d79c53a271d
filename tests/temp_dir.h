#pragma once
// A temporary folder owned by one test case: created fresh (unique name,
// mkdtemp) and removed with everything in it when the object goes out of
// scope, also when a REQUIRE fails and the case unwinds. Tests keep one of
// these as a local, never as a static, so nothing is left in /tmp.
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace compress::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    std::string pattern = (std::filesystem::temp_directory_path() / ("compress_test_" + tag + "_XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a folder like " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;  // never throw from a destructor; a leftover is reported by the hygiene test
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace compress::testing
