#pragma once
// Cells of the summary table, shared by the Markdown and HTML renderings.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace compress::pipeline {

// "02-distill": a stage's folder under the output folder, and its name in reports.
inline std::string stage_folder(int64_t index, const std::string& kind) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%02lld-", static_cast<long long>(index));
  return buf + kind;
}

inline std::string si_count(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof(buf), "%.2f G", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof(buf), "%.2f M", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof(buf), "%.1f k", v / 1e3);
  else std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

inline std::string si_bytes(double v) { return si_count(v) + "B"; }

inline bool has_number(const nlohmann::json& row, const char* key) {
  return row.is_object() && row.contains(key) && row[key].is_number();
}

// The thread count the table shows latency for: 1 when measured, else the first measured.
inline std::string latency_threads(const nlohmann::json& r) {
  std::string any;
  for (const auto& row : r["rows"]) {
    if (!row.contains("latency_ms") || !row["latency_ms"].is_object()) continue;
    if (row["latency_ms"].contains("1")) return "1";
    if (any.empty() && !row["latency_ms"].empty()) any = row["latency_ms"].begin().key();
  }
  return any;
}

inline std::vector<std::string> latency_batches(const nlohmann::json& r) {
  const std::string thr = latency_threads(r);
  std::vector<std::string> out;
  if (thr.empty()) return out;
  for (const auto& row : r["rows"]) {
    if (!row.contains("latency_ms") || !row["latency_ms"].contains(thr)) continue;
    for (const auto& kv : row["latency_ms"][thr].items())
      if (std::find(out.begin(), out.end(), kv.key()) == out.end()) out.push_back(kv.key());
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  return out;
}

inline double latency_of(const nlohmann::json& row, const std::string& thr, const std::string& batch) {
  if (!row.contains("latency_ms") || !row["latency_ms"].contains(thr) || !row["latency_ms"][thr].contains(batch))
    return -1;
  return row["latency_ms"][thr][batch].get<double>();
}

inline std::string accuracy_cell(const nlohmann::json& row, const nlohmann::json& first) {
  if (!has_number(row, "accuracy")) return "-";
  char buf[48];
  const double a = 100 * row["accuracy"].get<double>();
  if (&row != &first && has_number(first, "accuracy"))
    std::snprintf(buf, sizeof(buf), "%.2f%% (%+.2f)", a, a - 100 * first["accuracy"].get<double>());
  else
    std::snprintf(buf, sizeof(buf), "%.2f%%", a);
  return buf;
}

inline std::string ratio_cell(const nlohmann::json& row, const nlohmann::json& first, const char* key,
                              std::string (*fmt)(double)) {
  if (!has_number(row, key)) return "-";
  const double v = row[key].get<double>();
  std::string s = fmt(v);
  if (&row != &first && has_number(first, key) && first[key].get<double>() > 0) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), " (%.1f%%)", 100 * v / first[key].get<double>());
    s += buf;
  }
  return s;
}

inline std::string latency_cell(const nlohmann::json& row, const nlohmann::json& first, const std::string& thr,
                                const std::string& batch) {
  const double ms = latency_of(row, thr, batch), base = latency_of(first, thr, batch);
  if (ms < 0) return "-";
  char buf[48];
  if (&row != &first && base > 0) std::snprintf(buf, sizeof(buf), "%.3f ms (%.2fx)", ms, base / ms);
  else std::snprintf(buf, sizeof(buf), "%.3f ms", ms);
  return buf;
}

inline std::string seconds_cell(const nlohmann::json& row) {
  if (row.value("skipped", false)) return "unchanged";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", row.value("seconds", 0.0));
  return buf;
}

}  // namespace compress::pipeline
