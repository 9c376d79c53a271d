#pragma once
// Passes as named units. A pass is a function over the graph with an
// options struct (read from and written to JSON, so the CLI and recipes call
// it by name) and a result that says what it changed and what it left alone
// and why. Each pass lives in its own file and registers itself:
//
//   compress::run_pass(graph, "fold_batch_norm", {{"linear", false}});
//   for (const auto& name : compress::pass_names()) ...
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/ir/graph.h"

namespace compress {

struct PassResult {
  std::string pass;
  int changed = 0;                    // rewrites made
  std::vector<std::string> changes;   // one line per rewrite
  std::vector<std::string> skipped;   // one line per candidate left alone, with the reason
  nlohmann::json to_json() const;
};

struct PassInfo {
  std::string name;
  std::string summary;
  // Every option with its default; run_pass refuses keys not listed here
  // and values of another JSON type.
  nlohmann::json default_options = nlohmann::json::object();
  std::function<PassResult(Graph&, const nlohmann::json& options)> run;
};

// Called once per pass by its file's static registrar.
void register_pass(PassInfo info);
// Error(BadInput) for an unknown name, with the closest known one.
const PassInfo& pass_info(const std::string& name);
std::vector<std::string> pass_names();

// Checks the options against the pass's defaults (missing keys take the
// default), runs it, lints the graph. Error(BadInput) names an unknown or
// mistyped option as "<pass>.<key>".
PassResult run_pass(Graph& graph, const std::string& name,
                    const nlohmann::json& options = nlohmann::json::object());

}  // namespace compress
