#pragma once
// Record names in a model archive as LibTorch's zip reader (miniz) matches
// them: ignoring case. The zip walk and the pickle check compare names by
// this key, so they see the records LibTorch will read.
#include <cctype>
#include <string>

namespace compress::detail {

inline std::string record_key(std::string name) {
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace compress::detail
