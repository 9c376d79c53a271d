// compress report REPORT.json -o OUT.(html|md): renders a saved pipeline report.
#include <iostream>

#include <cxxopts.hpp>

#include "commands.h"
#include "parse_args.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/pipeline/report.h"

namespace compress::cli {

int cmd_report(int argc, char** argv) {
  cxxopts::Options options("compress report",
                           "Render a pipeline report (DIR/report.json of compress run) as a self-contained HTML page "
                           "with SVG charts, or as a Markdown table (by the output's extension, or --format).");
  options.positional_help("REPORT.json -o OUT.html");
  options.add_options()
      ("report", "the report (JSON)", cxxopts::value<std::string>())
      ("o,output", "output file (.html or .md; written atomically)", cxxopts::value<std::string>())
      ("format", "html or markdown (default: from the output's extension)", cxxopts::value<std::string>())
      ("h,help", "show this help");
  options.parse_positional({"report"});
  auto args = parse_args(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (!args.count("report")) bad_input("no report given (usage: compress report REPORT.json -o report.html)");
  if (!args.count("output")) bad_input("no output file given (-o report.html)");
  const std::string in = args["report"].as<std::string>(), out = args["output"].as<std::string>();
  std::string format = args.count("format") ? args["format"].as<std::string>() : "";
  if (format.empty()) {
    const auto ext = out.size() >= 3 ? out.substr(out.rfind('.') == std::string::npos ? out.size() : out.rfind('.')) : "";
    if (ext == ".html" || ext == ".htm") format = "html";
    else if (ext == ".md") format = "markdown";
    else bad_input("-o " + out + ": give an .html or .md file, or --format html|markdown");
  }
  if (format != "html" && format != "markdown") bad_input("--format must be html or markdown, got '" + format + "'");
  if (same_file(in, out)) bad_input("-o " + out + " would overwrite the report");
  const nlohmann::json report = pipeline::load_report(in);
  write_text_file(out, format == "html" ? pipeline::report_html(report) : pipeline::report_markdown(report));
  return 0;
}

}  // namespace compress::cli
