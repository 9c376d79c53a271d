// The HTML page: the summary table and inline SVG charts drawn here (no
// scripts, no fonts or styles from the network), so the file can be mailed
// or opened offline.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>

#include "compress/pipeline/report.h"
#include "report_format.h"

namespace compress::pipeline {

namespace {

const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

// A linear axis over [lo, hi] widened to round ticks.
struct Axis {
  double lo = 0, hi = 1, step = 0.2;
  Axis(double a, double b) {
    if (!(b > a)) {
      const double pad = a == 0 ? 1 : std::abs(a) * 0.1;
      a -= pad;
      b += pad;
    }
    const double raw = (b - a) / 5, mag = std::pow(10, std::floor(std::log10(raw)));
    step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
    lo = std::floor(a / step) * step;
    hi = std::ceil(b / step) * step;
  }
  double at(double v, double p0, double p1) const { return p0 + (v - lo) / (hi - lo) * (p1 - p0); }
};

constexpr double kW = 560, kH = 320, kL = 72, kR = 20, kT = 34, kB = 48;

std::string svg_open(const std::string& id, const std::string& title, double height = kH) {
  return "<svg class=\"chart\" id=\"" + esc(id) + "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px(kW) +
         "\" height=\"" + px(height) + "\" viewBox=\"0 0 " + px(kW) + " " + px(height) + "\">\n<text x=\"" +
         px(kW / 2) + "\" y=\"18\" text-anchor=\"middle\" class=\"title\">" + esc(title) + "</text>\n";
}

// Frame, ticks and labels of an x/y plot.
std::string axes(const Axis& x, const Axis& y, const std::string& xlabel, const std::string& ylabel) {
  std::string s;
  const double x0 = kL, x1 = kW - kR, y0 = kH - kB, y1 = kT;
  s += "<rect x=\"" + px(x0) + "\" y=\"" + px(y1) + "\" width=\"" + px(x1 - x0) + "\" height=\"" + px(y0 - y1) +
       "\" class=\"frame\"/>\n";
  for (double v = x.lo; v <= x.hi + x.step / 2; v += x.step) {
    const double p = x.at(v, x0, x1);
    s += "<line x1=\"" + px(p) + "\" x2=\"" + px(p) + "\" y1=\"" + px(y1) + "\" y2=\"" + px(y0) + "\" class=\"grid\"/>";
    s += "<text x=\"" + px(p) + "\" y=\"" + px(y0 + 16) + "\" text-anchor=\"middle\">" + num(v) + "</text>\n";
  }
  for (double v = y.lo; v <= y.hi + y.step / 2; v += y.step) {
    const double p = y.at(v, y0, y1);
    s += "<line x1=\"" + px(x0) + "\" x2=\"" + px(x1) + "\" y1=\"" + px(p) + "\" y2=\"" + px(p) + "\" class=\"grid\"/>";
    s += "<text x=\"" + px(x0 - 6) + "\" y=\"" + px(p + 4) + "\" text-anchor=\"end\">" + num(v) + "</text>\n";
  }
  s += "<text x=\"" + px((x0 + x1) / 2) + "\" y=\"" + px(kH - 8) + "\" text-anchor=\"middle\">" + esc(xlabel) + "</text>\n";
  s += "<text transform=\"translate(16," + px((y0 + y1) / 2) + ") rotate(-90)\" text-anchor=\"middle\">" + esc(ylabel) +
       "</text>\n";
  return s;
}

struct Point {
  std::string label;
  double x, y;
};

// Points in pipeline order, joined by a line: how each stage moved the model.
std::string scatter(const std::string& id, const std::string& title, const std::string& xlabel,
                    const std::string& ylabel, const std::vector<Point>& pts) {
  if (pts.empty()) return "";
  double xa = pts[0].x, xb = pts[0].x, ya = pts[0].y, yb = pts[0].y;
  for (const auto& p : pts) {
    xa = std::min(xa, p.x), xb = std::max(xb, p.x), ya = std::min(ya, p.y), yb = std::max(yb, p.y);
  }
  Axis x(std::min(0.0, xa), xb), y(ya, yb);
  std::string s = svg_open(id, title) + axes(x, y, xlabel, ylabel);
  const double x0 = kL, x1 = kW - kR, y0 = kH - kB, y1 = kT;
  std::string line;
  for (const auto& p : pts) line += px(x.at(p.x, x0, x1)) + "," + px(y.at(p.y, y0, y1)) + " ";
  s += "<polyline class=\"path\" points=\"" + line + "\"/>\n";
  for (size_t i = 0; i < pts.size(); ++i) {
    const auto& p = pts[i];
    const double cx = x.at(p.x, x0, x1), cy = y.at(p.y, y0, y1);
    s += "<circle class=\"point\" data-label=\"" + esc(p.label) + "\" data-x=\"" + num(p.x) + "\" data-y=\"" +
         num(p.y) + "\" cx=\"" + px(cx) + "\" cy=\"" + px(cy) + "\" r=\"5\" fill=\"" + kColors[i % 8] + "\"><title>" +
         esc(p.label) + ": " + num(p.x) + ", " + num(p.y) + "</title></circle>\n";
    // Labels near the right edge go to the left of their point, inside the
    // frame; the labels of points drawn on top of each other are stacked.
    const bool left = cx > x1 - 90;
    int below = 0;
    for (size_t k = 0; k < i; ++k)
      below += std::abs(x.at(pts[k].x, x0, x1) - cx) < 4 && std::abs(y.at(pts[k].y, y0, y1) - cy) < 4;
    s += "<text class=\"label\" x=\"" + px(left ? cx - 7 : cx + 7) + "\" y=\"" + px(cy - 7 + 13 * below) + "\"" +
         (left ? " text-anchor=\"end\"" : "") + ">" + esc(p.label) + "</text>\n";
  }
  return s + "</svg>\n";
}

struct Series {
  std::string name;
  std::vector<double> values;
};

// Horizontal bars, one group per category, one bar per series.
std::string bars(const std::string& id, const std::string& title, const std::string& xlabel,
                 const std::vector<std::string>& categories, const std::vector<Series>& series) {
  if (categories.empty()) return "";
  const double row_h = 8.0 * double(series.size()) + 8, left = 170;
  const double height = kT + 20 + row_h * double(categories.size()) + kB;
  double lo = 0, hi = 0;
  for (const auto& se : series)
    for (double v : se.values) lo = std::min(lo, v), hi = std::max(hi, v);
  Axis x(lo, hi);
  const double x0 = left, x1 = kW - kR, y1 = kT + 20, y0 = height - kB;
  std::string s = svg_open(id, title, height);
  for (size_t k = 0; k < series.size(); ++k)
    s += "<rect x=\"" + px(x0 + 110 * double(k)) + "\" y=\"" + px(kT - 6) + "\" width=\"10\" height=\"10\" fill=\"" +
         kColors[k % 8] + "\"/><text x=\"" + px(x0 + 14 + 110 * double(k)) + "\" y=\"" + px(kT + 3) + "\">" +
         esc(series[k].name) + "</text>\n";
  for (double v = x.lo; v <= x.hi + x.step / 2; v += x.step) {
    const double p = x.at(v, x0, x1);
    s += "<line x1=\"" + px(p) + "\" x2=\"" + px(p) + "\" y1=\"" + px(y1) + "\" y2=\"" + px(y0) + "\" class=\"grid\"/>";
    s += "<text x=\"" + px(p) + "\" y=\"" + px(y0 + 16) + "\" text-anchor=\"middle\">" + num(v) + "</text>\n";
  }
  s += "<text x=\"" + px((x0 + x1) / 2) + "\" y=\"" + px(height - 8) + "\" text-anchor=\"middle\">" + esc(xlabel) +
       "</text>\n";
  const double zero = x.at(0, x0, x1);
  for (size_t c = 0; c < categories.size(); ++c) {
    const double top = y1 + row_h * double(c);
    s += "<text x=\"" + px(x0 - 6) + "\" y=\"" + px(top + row_h / 2 + 3) + "\" text-anchor=\"end\">" +
         esc(categories[c]) + "</text>\n";
    for (size_t k = 0; k < series.size(); ++k) {
      const double v = series[k].values[c], p = x.at(v, x0, x1);
      s += "<rect class=\"bar\" data-label=\"" + esc(categories[c]) + "\" data-series=\"" + esc(series[k].name) +
           "\" data-value=\"" + num(v) + "\" x=\"" + px(std::min(p, zero)) + "\" y=\"" + px(top + 4 + 8 * double(k)) +
           "\" width=\"" + px(std::max(1.0, std::abs(p - zero))) + "\" height=\"7\" fill=\"" + kColors[k % 8] +
           "\"><title>" + esc(categories[c]) + " " + esc(series[k].name) + ": " + num(v) + "</title></rect>\n";
    }
  }
  return s + "</svg>\n";
}

struct Curve {
  std::string name;
  std::vector<std::pair<double, double>> pts;
};

std::string curves(const std::string& id, const std::string& title, const std::string& xlabel,
                   const std::string& ylabel, const std::vector<Curve>& cs) {
  double xa = 0, xb = 0, ya = 0, yb = 0;
  bool any = false;
  for (const auto& c : cs)
    for (const auto& p : c.pts) {
      if (!any) xa = xb = p.first, ya = yb = p.second, any = true;
      xa = std::min(xa, p.first), xb = std::max(xb, p.first), ya = std::min(ya, p.second), yb = std::max(yb, p.second);
    }
  if (!any) return "";
  Axis x(std::min(0.0, xa), xb), y(std::min(0.0, ya), yb);
  std::string s = svg_open(id, title) + axes(x, y, xlabel, ylabel);
  const double x0 = kL, x1 = kW - kR, y0 = kH - kB, y1 = kT;
  for (size_t k = 0; k < cs.size(); ++k) {
    std::string line;
    for (const auto& p : cs[k].pts) line += px(x.at(p.first, x0, x1)) + "," + px(y.at(p.second, y0, y1)) + " ";
    s += "<polyline class=\"curve\" data-label=\"" + esc(cs[k].name) + "\" data-points=\"" +
         std::to_string(cs[k].pts.size()) + "\" points=\"" + line + "\" stroke=\"" + kColors[k % 8] + "\"/>\n";
    s += "<text x=\"" + px(x1 - 6) + "\" y=\"" + px(y1 + 14 + 14 * double(k)) + "\" text-anchor=\"end\" fill=\"" +
         kColors[k % 8] + "\">" + esc(cs[k].name) + "</text>\n";
  }
  return s + "</svg>\n";
}

std::string table_html(const nlohmann::json& r) {
  const auto& rows = r["rows"];
  static const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& first = rows.empty() ? none : rows[0];
  const std::string thr = latency_threads(r);
  const auto batches = latency_batches(r);
  std::string s = "<table class=\"summary\"><tr><th>stage</th><th>top-1</th><th>MACs</th><th>params</th><th>size</th>";
  for (const auto& b : batches) s += "<th>latency b" + esc(b) + " (" + esc(thr) + " thr)</th>";
  s += "<th>time</th></tr>\n";
  for (const auto& row : rows) {
    s += "<tr><td>" + esc(row["name"].get<std::string>()) + "</td><td>" + esc(accuracy_cell(row, first)) + "</td><td>" +
         esc(ratio_cell(row, first, "macs", si_count)) + "</td><td>" + esc(ratio_cell(row, first, "params", si_count)) +
         "</td><td>" + esc(ratio_cell(row, first, "file_bytes", si_bytes)) + "</td>";
    for (const auto& b : batches) s += "<td>" + esc(latency_cell(row, first, thr, b)) + "</td>";
    s += "<td>" + esc(seconds_cell(row)) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

std::vector<Point> points(const nlohmann::json& r, const std::function<double(const nlohmann::json&)>& x) {
  std::vector<Point> pts;
  for (const auto& row : r["rows"]) {
    if (!has_number(row, "accuracy")) continue;
    const double v = x(row);
    if (v < 0) continue;
    pts.push_back({row["name"].get<std::string>(), v, 100 * row["accuracy"].get<double>()});
  }
  return pts;
}

}  // namespace

std::string report_html(const nlohmann::json& r) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>compress pipeline report</title>\n"
       "<style>body{font:14px sans-serif;margin:24px;max-width:1200px;color:#222}"
       "table.summary{border-collapse:collapse}table.summary td,table.summary th{border:1px solid #ccc;padding:4px 8px;"
       "text-align:right}table.summary td:first-child{text-align:left}"
       "svg.chart{margin:8px;background:#fff;border:1px solid #ddd}svg text{font:11px sans-serif;fill:#333}"
       "svg text.title{font:bold 13px sans-serif}.frame{fill:none;stroke:#999}.grid{stroke:#eee}"
       ".path{fill:none;stroke:#999;stroke-dasharray:4 3}.curve{fill:none;stroke-width:1.5}"
       ".charts{display:flex;flex-wrap:wrap}pre{background:#f6f6f6;padding:8px;overflow:auto}</style></head><body>\n";
  o << "<h1>Pipeline report</h1>\n";
  if (r.contains("recipe") && r["recipe"].contains("description") && r["recipe"]["description"].is_string())
    o << "<p>" << esc(r["recipe"]["description"].get<std::string>()) << "</p>\n";
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%.1f s in all, %d threads, on %s. Ratios are against the first row.",
                r.value("total_seconds", 0.0), r.value("threads", 0),
                r.contains("machine") ? r["machine"].value("cpu", "?").c_str() : "?");
  o << "<p>" << esc(buf) << "</p>\n" << table_html(r);

  o << "<h2>Accuracy against cost</h2>\n<div class=\"charts\">\n";
  o << scatter("acc-macs", "Test top-1 vs MACs", "MACs (millions)", "top-1 (%)",
               points(r, [](const nlohmann::json& row) { return has_number(row, "macs") ? row["macs"].get<double>() / 1e6 : -1; }));
  o << scatter("acc-size", "Test top-1 vs file size", "file size (kB)", "top-1 (%)",
               points(r, [](const nlohmann::json& row) {
                 return has_number(row, "file_bytes") ? row["file_bytes"].get<double>() / 1e3 : -1;
               }));
  const std::string thr = latency_threads(r);
  for (const auto& b : latency_batches(r))
    o << scatter("acc-latency-b" + b, "Test top-1 vs latency, batch " + b + ", " + thr + " thread(s)", "latency (ms)",
                 "top-1 (%)", points(r, [&](const nlohmann::json& row) { return latency_of(row, thr, b); }));
  o << "</div>\n";

  std::string widths, sqnr;
  std::vector<Curve> losses;
  for (const auto& s : r["stages"]) {
    const std::string name = stage_folder(s.value("index", 0), s.value("kind", std::string()));
    if (!s.contains("details") || !s["details"].is_object()) continue;
    const auto& d = s["details"];
    if (d.contains("result") && d["result"].contains("groups")) {
      std::vector<std::string> cats;
      Series before{"before", {}}, after{"after", {}};
      for (const auto& g : d["result"]["groups"]) {
        cats.push_back(g.value("name", "?"));
        before.values.push_back(g.value("before", 0.0));
        after.values.push_back(g.value("after", 0.0));
      }
      widths += bars("widths-" + name, "Channels per group, " + name, "channels", cats, {before, after});
    }
    if (d.contains("layers") && d["layers"].is_array()) {
      std::vector<std::string> cats;
      Series db{"SQNR (dB)", {}};
      for (const auto& l : d["layers"]) {
        if (!l.contains("sqnr_db") || !l["sqnr_db"].is_number()) continue;
        cats.push_back(l.value("name", "?"));
        db.values.push_back(l["sqnr_db"].get<double>());
      }
      sqnr += bars("sqnr-" + name, "Output SQNR per layer against float, " + name, "SQNR (dB)", cats, {db});
    }
    if (d.contains("loss_curve") && d["loss_curve"].is_array() && !d["loss_curve"].empty()) {
      Curve c{name, {}};
      for (const auto& p : d["loss_curve"]) c.pts.emplace_back(p[0].get<double>(), p[1].get<double>());
      losses.push_back(c);
    }
  }
  if (!widths.empty()) o << "<h2>Pruning: channels before and after</h2>\n<div class=\"charts\">\n" << widths << "</div>\n";
  if (!sqnr.empty()) o << "<h2>Quantization: SQNR per layer</h2>\n<div class=\"charts\">\n" << sqnr << "</div>\n";
  if (!losses.empty())
    o << "<h2>Training loss</h2>\n<div class=\"charts\">\n"
      << curves("loss", "Training loss (mean over windows of steps)", "step", "loss", losses) << "</div>\n";

  o << "<h2>Stages</h2>\n";
  for (const auto& s : r["stages"]) {
    const std::string name = stage_folder(s.value("index", 0), s.value("kind", std::string()));
    o << "<details><summary>" << esc(name + (s.value("skipped", false) ? " (unchanged, skipped)" : "")) << "</summary><pre>"
      << esc(s.contains("options") ? s["options"].dump(2) : "{}") << "</pre></details>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

}  // namespace compress::pipeline
