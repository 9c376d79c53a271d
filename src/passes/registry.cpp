#include <map>

#include "compress/error.h"
#include "compress/passes/pass.h"

namespace compress {
namespace {

std::map<std::string, PassInfo>& passes() {
  static std::map<std::string, PassInfo> table;
  return table;
}

size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest(const std::string& name, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& k : known) {
    size_t d = distance(name, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best;
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
    std::string best = closest(name, pass_names());
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
      std::string best = closest(kv.key(), known);
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
