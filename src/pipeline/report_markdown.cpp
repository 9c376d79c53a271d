#include <cstdio>
#include <fstream>

#include "compress/error.h"
#include "compress/io.h"
#include "compress/pipeline/report.h"
#include "report_format.h"

namespace compress::pipeline {

void check_report(const nlohmann::json& r, const std::string& what) {
  if (!r.is_object() || r.value("report", "") != "compress-pipeline")
    bad_input(what + ": not a compress pipeline report (no \"report\": \"compress-pipeline\"; compress run writes one)");
  if (!r.contains("version") || !r["version"].is_number_integer() || r["version"].get<int>() != 1)
    bad_input(what + ": report version " + (r.contains("version") ? r["version"].dump() : "missing") +
              ", this compress reads version 1");
  if (!r.contains("rows") || !r["rows"].is_array()) bad_input(what + ": \"rows\" is missing or not an array");
  if (!r.contains("stages") || !r["stages"].is_array()) bad_input(what + ": \"stages\" is missing or not an array");
  for (size_t i = 0; i < r["rows"].size(); ++i) {
    const auto& row = r["rows"][i];
    if (!row.is_object() || !row.contains("name") || !row["name"].is_string())
      bad_input(what + ": rows[" + std::to_string(i) + "] has no name");
    for (const char* k : {"accuracy", "macs", "params", "file_bytes"})
      if (row.contains(k) && !row[k].is_number() && !row[k].is_null())
        bad_input(what + ": rows[" + std::to_string(i) + "]." + k + " is not a number");
  }
}

nlohmann::json load_report(const std::string& path) {
  require_input_file(path);
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception&) {
    bad_input(path + ": not a compress pipeline report (not valid JSON)");
  }
  check_report(j, path);
  return j;
}

std::string report_markdown(const nlohmann::json& r) {
  const auto& rows = r["rows"];
  static const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& first = rows.empty() ? none : rows[0];  // ratios are against it (cells compare addresses)
  const std::string thr = latency_threads(r);
  std::vector<std::string> batches = latency_batches(r);
  std::string out = "| stage | top-1 | MACs | params | size |";
  std::string rule = "|---|---:|---:|---:|---:|";
  for (const auto& b : batches) {
    out += " latency b" + b + " (" + thr + " thr) |";
    rule += "---:|";
  }
  out += " time |\n" + rule + "---:|\n";
  for (const auto& row : rows) {
    out += "| " + row["name"].get<std::string>() + " | ";
    out += accuracy_cell(row, first) + " | ";
    out += ratio_cell(row, first, "macs", si_count) + " | ";
    out += ratio_cell(row, first, "params", si_count) + " | ";
    out += ratio_cell(row, first, "file_bytes", si_bytes) + " | ";
    for (const auto& b : batches) out += latency_cell(row, first, thr, b) + " | ";
    out += seconds_cell(row) + " |\n";
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "\nTotal %.1f s on %s (%s threads); ratios against the first row.\n",
                r.value("total_seconds", 0.0), r.contains("machine") ? r["machine"].value("cpu", "?").c_str() : "?",
                std::to_string(r.value("threads", 0)).c_str());
  out += buf;
  for (const auto& s : r["stages"]) {
    if (s.value("kind", "") != "eval" || !s.contains("details")) continue;
    const auto& d = s["details"];
    std::snprintf(buf, sizeof(buf), "eval (stage %d, %s split): top-1 %.2f%%, top-5 %.2f%% on %lld samples\n",
                  s.value("index", 0), d.value("split", "test").c_str(), 100 * d.value("top1", 0.0),
                  100 * d.value("top5", 0.0), static_cast<long long>(d.value("count", int64_t(0))));
    out += buf;
  }
  return out;
}

}  // namespace compress::pipeline
