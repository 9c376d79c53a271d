#include "gz_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace compress_zlib {

GzStatus read_file(const std::string& path, std::vector<unsigned char>& bytes, std::string& error,
                   const GzLimit& limit) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return GzStatus::Missing;
  if (std::filesystem::is_directory(path, ec)) {
    error = "is a directory";
    return GzStatus::CannotOpen;
  }
  // gzopen reads plain files transparently: one path for both kinds.
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    error = std::strerror(errno);
    return GzStatus::CannotOpen;
  }
  gzbuffer(f, 1 << 17);
  std::vector<unsigned char> chunk(1 << 16);
  for (;;) {
    int n = gzread(f, chunk.data(), unsigned(chunk.size()));
    if (n < 0) {
      int code = 0;
      error = gzerror(f, &code);
      gzclose(f);
      return GzStatus::Corrupt;
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
    if (limit && bytes.size() > limit(bytes)) {
      gzclose(f);
      return GzStatus::TooLong;
    }
  }
  int code = 0;
  const char* msg = gzerror(f, &code);
  // A gzip stream cut short reads as end of file with Z_BUF_ERROR set.
  if (code != Z_OK && code != Z_STREAM_END) {
    error = msg ? msg : "read error";
    gzclose(f);
    return code == Z_BUF_ERROR ? GzStatus::Truncated : GzStatus::Corrupt;
  }
  int rc = gzclose(f);
  if (rc == Z_BUF_ERROR) {
    error = "gzip stream ends early";
    return GzStatus::Truncated;
  }
  if (rc != Z_OK) {
    error = "gzip error " + std::to_string(rc);
    return GzStatus::Corrupt;
  }
  return GzStatus::Ok;
}

}  // namespace compress_zlib
