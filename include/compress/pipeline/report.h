#pragma once
// Renderings of a pipeline report (the JSON run_pipeline writes): a Markdown
// summary table, and a self-contained HTML page whose charts are inline SVG
// (no scripts, no network): accuracy against MACs, file size and latency
// across the rows; per-group widths before and after pruning; per-layer SQNR
// of quantization; the training loss curves.
//
// Chart markup the tests (and other tools) rely on: each chart is an
// <svg class="chart" id="..."> whose data marks carry their values:
// <circle class="point" data-label data-x data-y>, <rect class="bar"
// data-label data-series data-value>, <polyline class="curve" data-points>.
#include <string>

#include <nlohmann/json.hpp>

namespace compress::pipeline {

// Error(BadInput) naming `what` (a file name) and the first problem unless
// `report` is a pipeline report this version can render.
void check_report(const nlohmann::json& report, const std::string& what);
// Reads and checks a report file.
nlohmann::json load_report(const std::string& path);

std::string report_markdown(const nlohmann::json& report);
std::string report_html(const nlohmann::json& report);

}  // namespace compress::pipeline
