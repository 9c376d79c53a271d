#pragma once
// Module paths as the quantization passes match them (--exclude, the
// dynamic pass's `only`): "a.b" is under "a" and under "a.b", not under "a.bc".
#include <string>

namespace compress::quant::detail {

inline bool under_module(const std::string& module, const std::string& path) {
  return module == path ||
         (module.size() > path.size() && module.compare(0, path.size(), path) == 0 && module[path.size()] == '.');
}

}  // namespace compress::quant::detail
