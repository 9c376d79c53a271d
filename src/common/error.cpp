#include "compress/error.h"

#include <c10/util/Exception.h>

namespace compress {

void bad_input(const std::string& message) { throw Error(ErrorKind::BadInput, message); }
void failure(const std::string& message) { throw Error(ErrorKind::Failure, message); }

std::string first_line_of(const std::exception& e) {
  std::string text;
  if (auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    text = c10_error->what_without_backtrace();
  } else {
    text = e.what();
  }
  // Trim leading blank lines, then keep the first non-empty line.
  size_t start = text.find_first_not_of(" \n\t");
  if (start == std::string::npos) return "unknown error";
  size_t end = text.find('\n', start);
  std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
  // LibTorch appends " (... at /path/file.cpp:123)" source positions; users need none of it.
  size_t at = line.find(" (Exception raised from");
  if (at != std::string::npos) line.erase(at);
  return line;
}

}  // namespace compress
