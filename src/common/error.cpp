#include <algorithm>
#include "compress/error.h"

#include <c10/util/Exception.h>

namespace compress {

void bad_input(const std::string& message) { throw Error(ErrorKind::BadInput, message); }
void failure(const std::string& message) { throw Error(ErrorKind::Failure, message); }
void said_elsewhere(ErrorKind kind, const std::string& message) { throw Error(kind, message, true); }

std::string first_line_of(const std::exception& e) {
  std::string text;
  if (auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    text = c10_error->what_without_backtrace();
  } else {
    text = e.what();
  }
  // Errors raised inside TorchScript code come wrapped in an interpreter
  // traceback; the cause is the last "SomethingError: message" line.
  if (text.find("The following operation failed in the TorchScript interpreter") != std::string::npos) {
    size_t pos = 0;
    std::string cause;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      size_t colon = line.find("Error: ");
      if (colon != std::string::npos && line.find(' ') > colon) cause = line.substr(colon + 7);
      if (end == std::string::npos) break;
      pos = end + 1;
    }
    if (!cause.empty()) text = cause;
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

std::string closest_name(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::string::npos;
  std::vector<size_t> row;
  for (const std::string& c : candidates) {
    // Levenshtein distance, one row at a time.
    row.assign(c.size() + 1, 0);
    for (size_t j = 0; j <= c.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= name.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= c.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (name[i - 1] == c[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    if (row[c.size()] < best_distance) {
      best_distance = row[c.size()];
      best = c;
    }
  }
  return best;
}

}  // namespace compress
