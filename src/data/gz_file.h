#pragma once
// zlib declares a global function named `compress`, which collides with our
// namespace; so zlib is only included in gz_file.cpp, behind this interface
// that names neither.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace compress_zlib {

enum class GzStatus { Ok, Missing, CannotOpen, Corrupt, Truncated, TooLong };

// How many bytes the content may have, given what has been read so far (a
// reader that knows its format's header can bound the rest by it).
using GzLimit = std::function<size_t(const std::vector<unsigned char>& so_far)>;

// Reads a gzip-compressed or plain file whole. On failure `error` says why.
// With `limit`, stops with TooLong as soon as the content exceeds it, so a
// small gzip stream that expands without end (a "gzip bomb") costs at most
// the limit plus one 64 KiB chunk of memory.
GzStatus read_file(const std::string& path, std::vector<unsigned char>& bytes, std::string& error,
                   const GzLimit& limit = nullptr);

}  // namespace compress_zlib
