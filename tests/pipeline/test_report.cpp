// Report rendering: Markdown, and the HTML page checked in headless Chromium
// (the charts exist in the rendered DOM with their data points; a screenshot
// is taken). Skipped, not passed, where Chromium is not installed.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compress/pipeline/report.h"
#include "skip.h"
#include "temp_dir.h"
#include "train/cli_run.h"

namespace fs = std::filesystem;
using cli_test::run;
using cli_test::Run;
using compress::testing::TempDir;

namespace {

// A report as compress run writes it: three rows (float, pruned, INT8), a
// pruning stage with two groups, a quantization stage with three layers, a
// loss curve of five points.
nlohmann::json sample_report() {
  return nlohmann::json::parse(R"({
    "report": "compress-pipeline", "version": 1, "threads": 2, "total_seconds": 12.5,
    "machine": {"cpu": "test cpu", "hardware_threads": 2},
    "recipe": {"description": "a <sample> & report"},
    "rows": [
      {"name": "input", "kind": "input", "stage": -1, "accuracy": 0.9013, "macs": 2000000, "params": 100000,
       "file_bytes": 400000, "seconds": 0, "skipped": false, "latency_ms": {"1": {"1": 1.2, "32": 20.0}}},
      {"name": "00-prune", "kind": "prune", "stage": 0, "accuracy": 0.8950, "macs": 1000000, "params": 50000,
       "file_bytes": 200000, "seconds": 30, "skipped": false, "latency_ms": {"1": {"1": 0.7, "32": 11.0}}},
      {"name": "01-quantize", "kind": "quantize", "stage": 1, "accuracy": 0.8940, "macs": 1000000, "params": 50000,
       "file_bytes": 60000, "seconds": 3, "skipped": true, "latency_ms": {"1": {"1": 0.3, "32": 4.0}}}
    ],
    "stages": [
      {"index": 0, "kind": "prune", "options": {"target_macs": 0.5}, "skipped": false, "seconds": 30,
       "details": {"result": {"groups": [{"name": "features.0", "before": 32, "after": 16},
                                         {"name": "features.4", "before": 64, "after": 40}]},
                   "loss_curve": [[1, 2.3], [2, 1.7], [3, 1.1], [4, 0.9], [5, 0.8]]}},
      {"index": 1, "kind": "quantize", "options": {"method": "percentile"}, "skipped": true, "seconds": 3,
       "details": {"layers": [{"name": "features.0", "sqnr_db": 38.5}, {"name": "features.4", "sqnr_db": 31.25},
                              {"name": "classifier", "sqnr_db": 27.0}]}},
      {"index": 2, "kind": "bench", "options": {}, "skipped": false, "seconds": 5, "details": {"rows": []}}
    ]})");
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The markup of <svg ... id="ID"> ... </svg> in `dom` ("" if absent).
std::string chart(const std::string& dom, const std::string& id) {
  const size_t at = dom.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  const size_t start = dom.rfind("<svg", at), end = dom.find("</svg>", at);
  return dom.substr(start, end - start);
}

std::vector<std::string> attribute_values(const std::string& markup, const std::string& element_class,
                                          const std::string& attribute) {
  std::vector<std::string> out;
  const std::regex element("<[a-z]+ class=\"" + element_class + "\"[^>]*>");
  const std::regex attr(attribute + "=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(markup.begin(), markup.end(), element); it != std::sregex_iterator(); ++it) {
    std::smatch m;
    const std::string tag = it->str();
    if (std::regex_search(tag, m, attr)) out.push_back(m[1].str());
  }
  return out;
}

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (fs::exists(p)) return p;
  return "";
}

}  // namespace

TEST_CASE("report: the Markdown table has a row per model with ratios against the first", "[pipeline][report]") {
  const std::string md = compress::pipeline::report_markdown(sample_report());
  INFO(md);
  CHECK(md.find("| stage | top-1 | MACs | params | size | latency b1 (1 thr) | latency b32 (1 thr) | time |") == 0);
  CHECK(md.find("| 00-prune | 89.50% (-0.63) | 1.00 M (50.0%) | 50.0 k (50.0%) | 200.0 kB (50.0%) | 0.700 ms (1.71x) | "
                "11.000 ms (1.82x) | 30.0 s |") != std::string::npos);
  CHECK(md.find("| 01-quantize | 89.40% (-0.73) | 1.00 M (50.0%) | 50.0 k (50.0%) | 60.0 kB (15.0%) | 0.300 ms (4.00x) | "
                "4.000 ms (5.00x) | unchanged |") != std::string::npos);
}

TEST_CASE("report: compress report refuses a file that is not a report, writing nothing", "[pipeline][report][bad-input]") {
  const TempDir dir("report_bad");
  std::ofstream(dir.file("other.json")) << R"({"macs": 12})";
  std::ofstream(dir.file("text.json")) << "hello";
  auto old = sample_report();
  old["version"] = 7;
  std::ofstream(dir.file("v7.json")) << old.dump();
  for (const auto& [file, expect] : std::vector<std::pair<std::string, std::string>>{
           {"other.json", "not a compress pipeline report (no \"report\""},
           {"text.json", "not a compress pipeline report (not valid JSON)"},
           {"v7.json", "report version 7, this compress reads version 1"},
           {"missing.json", "missing.json"}}) {
    Run r = run("report " + dir.file(file) + " -o " + dir.file("out.html"));
    INFO(r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK(r.out.find(expect) != std::string::npos);
    CHECK_FALSE(fs::exists(dir.file("out.html")));
  }
  std::ofstream(dir.file("ok.json")) << sample_report().dump();
  Run r = run("report " + dir.file("ok.json") + " -o " + dir.file("out.txt"));
  CHECK(r.code == 2);
  CHECK(r.out.find("give an .html or .md file") != std::string::npos);
}

TEST_CASE("report: the HTML page renders its charts in headless Chromium", "[pipeline][report][browser]") {
  const std::string chromium = find_chromium();
  if (chromium.empty()) COMPRESS_SKIP("chromium is not installed (Debian package chromium; scripts/setup.sh installs it)");
  const TempDir dir("report_browser");
  std::ofstream(dir.file("report.json")) << sample_report().dump();
  Run r = run("report " + dir.file("report.json") + " -o " + dir.file("report.html"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string html = read(dir.file("report.html"));
  CHECK(html.find("<script") == std::string::npos);  // self-contained: no scripts,
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));  // nothing fetched
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("a &lt;sample&gt; &amp; report") != std::string::npos);

  // The browser's own profile and crash files stay in the test's folder.
  const std::string flags = " --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" + dir.file("profile") +
                            " --crash-dumps-dir=" + dir.file("crashes");
  const std::string url = "file://" + dir.file("report.html");
  const std::string dom_file = dir.file("dom.html");
  const std::string cmd = "HOME=" + dir.path().string() + " timeout 120 " + chromium + flags + " --dump-dom " + url +
                          " > " + dom_file + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const std::string dom = read(dom_file);
  REQUIRE(dom.find("<h1>Pipeline report</h1>") != std::string::npos);

  // Accuracy against MACs: one point per row, at the row's values.
  const std::string macs = chart(dom, "acc-macs");
  REQUIRE_FALSE(macs.empty());
  CHECK(attribute_values(macs, "point", "data-x") == std::vector<std::string>{"2", "1", "1"});
  CHECK(attribute_values(macs, "point", "data-y") == std::vector<std::string>{"90.13", "89.5", "89.4"});
  CHECK(attribute_values(chart(dom, "acc-size"), "point", "data-x") == std::vector<std::string>{"400", "200", "60"});
  CHECK(attribute_values(chart(dom, "acc-latency-b1"), "point", "data-x") ==
        std::vector<std::string>{"1.2", "0.7", "0.3"});
  CHECK(attribute_values(chart(dom, "acc-latency-b32"), "point", "data-x") ==
        std::vector<std::string>{"20", "11", "4"});
  // Widths before and after pruning: two groups, two bars each.
  const std::string widths = chart(dom, "widths-00-prune");
  CHECK(attribute_values(widths, "bar", "data-value") == std::vector<std::string>{"32", "16", "64", "40"});
  CHECK(attribute_values(widths, "bar", "data-label") ==
        std::vector<std::string>{"features.0", "features.0", "features.4", "features.4"});
  // SQNR per layer.
  CHECK(attribute_values(chart(dom, "sqnr-01-quantize"), "bar", "data-value") ==
        std::vector<std::string>{"38.5", "31.25", "27"});
  // The loss curve: five points.
  CHECK(attribute_values(chart(dom, "loss"), "curve", "data-points") == std::vector<std::string>{"5"});

  const std::string png = dir.file("report.png");
  const std::string shot = "HOME=" + dir.path().string() + " timeout 120 " + chromium + flags +
                           " --window-size=1200,1600 --screenshot=" + png + " " + url + " >/dev/null 2>&1";
  REQUIRE(std::system(shot.c_str()) == 0);
  const std::string image = read(png);
  REQUIRE(image.size() > 10000);  // a page with charts, not a blank image
  CHECK(image.compare(1, 3, "PNG") == 0);
}
