#pragma once
// Presentation of analysis results for the CLI: tables and JSON.
#include <string>

#include <nlohmann/json.hpp>

#include "compress/analysis/profile.h"

namespace compress::cli {

// 11689512 -> "11,689,512"
std::string with_commas(int64_t v);
// 1814073344 -> "1.814 G"
std::string si(double v);

std::string format_profile_table(const ModelProfile& prof, const std::string& model_path);
nlohmann::json profile_to_json(const ModelProfile& prof, const std::string& model_path);

}  // namespace compress::cli
