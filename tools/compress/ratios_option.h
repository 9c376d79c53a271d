#pragma once
// The ratios file `compress prune --ratios` reads and `compress amc` writes
// (and reads for --match-latency): {"group name": removed fraction, ...}.
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "compress/error.h"
#include "compress/io.h"

namespace compress::cli {

inline std::map<std::string, double> read_ratios(const std::string& path) {
  require_input_file(path);
  std::ifstream in(path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception&) {
    bad_input(path + ": not valid JSON (expected {\"group name\": ratio, ...})");
  }
  if (!j.is_object() || j.empty()) bad_input(path + ": expected a JSON object {\"group name\": ratio, ...} naming at least one group");
  std::map<std::string, double> ratios;
  for (const auto& kv : j.items()) {
    if (!kv.value().is_number()) bad_input(path + ": the ratio of '" + kv.key() + "' is not a number");
    ratios[kv.key()] = kv.value().get<double>();
  }
  return ratios;
}

}  // namespace compress::cli
