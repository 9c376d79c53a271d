#include <map>

#include "compress/error.h"
#include "compress/passes/pass.h"

namespace compress {
namespace {

std::map<std::string, PassInfo>& passes() {
  static std::map<std::string, PassInfo> table;
  return table;
}

bool same_kind(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return !(a.is_number_integer() && b.is_number_float());
  return a.type() == b.type();
}

}  // namespace

nlohmann::json PassResult::to_json() const {
  return {{"pass", pass}, {"changed", changed}, {"changes", changes}, {"skipped", skipped}};
}

void register_pass(PassInfo info) {
  if (passes().count(info.name)) failure("pass '" + info.name + "' is registered twice");
  std::string name = info.name;
  passes().emplace(name, std::move(info));
}

std::vector<std::string> pass_names() {
  std::vector<std::string> names;
  for (const auto& kv : passes()) names.push_back(kv.first);
  return names;
}

const PassInfo& pass_info(const std::string& name) {
  auto it = passes().find(name);
  if (it == passes().end()) {
    std::string best = closest_name(name, pass_names());
    bad_input("unknown pass '" + name + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
  }
  return it->second;
}

PassResult run_pass(Graph& graph, const std::string& name, const nlohmann::json& options) {
  const PassInfo& info = pass_info(name);
  if (!options.is_object()) bad_input(name + ": options must be a JSON object");
  nlohmann::json merged = info.default_options;
  std::vector<std::string> known;
  for (const auto& kv : info.default_options.items()) known.push_back(kv.key());
  for (const auto& kv : options.items()) {
    if (!info.default_options.contains(kv.key())) {
      std::string best = closest_name(kv.key(), known);
      bad_input(name + "." + kv.key() + ": unknown option" + (best.empty() ? " (the pass takes none)" : " (did you mean '" + best + "'?)"));
    }
    if (!same_kind(info.default_options[kv.key()], kv.value()))
      bad_input(name + "." + kv.key() + ": expected a " + std::string(info.default_options[kv.key()].type_name()) +
                ", got " + kv.value().type_name());
    merged[kv.key()] = kv.value();
  }
  graph.lint();
  PassResult result = info.run(graph, merged);
  result.pass = name;
  graph.lint();
  return result;
}

}  // namespace compress
