#pragma once
// zlib declares a global function named `compress`, which collides with our
// namespace; so zlib is only included in gz_file.cpp, behind this interface
// that names neither.
#include <string>
#include <vector>

namespace compress_zlib {

enum class GzStatus { Ok, Missing, CannotOpen, Corrupt, Truncated };

// Reads a gzip-compressed or plain file whole. On failure `error` says why.
GzStatus read_file(const std::string& path, std::vector<unsigned char>& bytes, std::string& error);

}  // namespace compress_zlib
