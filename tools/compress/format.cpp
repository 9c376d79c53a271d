#include "format.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace compress::cli {

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

std::string si(double v) {
  const char* units[] = {"", " K", " M", " G", " T"};
  int u = 0;
  while (v >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.3f%s" : "%.0f%s", v, units[u]);
  return buf;
}

static std::string shapes_text(const std::vector<Shape>& shapes) {
  std::string s;
  for (const auto& sh : shapes) s += (s.empty() ? "" : ", ") + shape_to_string(sh);
  return s.empty() ? "-" : s;
}

std::string format_profile_table(const ModelProfile& prof, const std::string& model_path) {
  std::ostringstream os;
  size_t name_w = 4, op_w = 2, shape_w = 12;
  for (const auto& n : prof.nodes) {
    name_w = std::max(name_w, n.name.size());
    op_w = std::max(op_w, n.op.size());
    shape_w = std::max(shape_w, shapes_text(n.output_shapes).size());
  }
  name_w = std::min<size_t>(name_w, 48);
  char line[512];
  std::snprintf(line, sizeof line, "%-*s  %-*s  %-*s  %12s  %12s  %6s\n", int(name_w), "node", int(op_w), "op",
                int(shape_w), "output shape", "params", "MACs", "share");
  os << "model: " << model_path << "   input: " << shapes_text(prof.input_shapes) << "\n" << line;
  os << std::string(name_w + op_w + shape_w + 12 + 12 + 6 + 10, '-') << "\n";
  for (const auto& n : prof.nodes) {
    std::string name = n.name.size() > name_w ? "..." + n.name.substr(n.name.size() - name_w + 3) : n.name;
    std::string share = "";
    if (n.macs > 0 && prof.total_macs > 0) {
      char b[16];
      std::snprintf(b, sizeof b, "%.1f%%", 100.0 * double(n.macs) / double(prof.total_macs));
      share = b;
    }
    std::snprintf(line, sizeof line, "%-*s  %-*s  %-*s  %12s  %12s  %6s%s\n", int(name_w), name.c_str(), int(op_w),
                  n.op.c_str(), int(shape_w), shapes_text(n.output_shapes).c_str(),
                  n.params ? with_commas(n.params).c_str() : "", n.macs ? with_commas(n.macs).c_str() : "",
                  share.c_str(), n.understood ? "" : "  (carried through)");
    os << line;
  }
  os << std::string(name_w + op_w + shape_w + 12 + 12 + 6 + 10, '-') << "\n";
  char mb[64];
  std::snprintf(mb, sizeof mb, "%.2f MB", double(prof.param_bytes) / 1e6);
  os << "total: " << with_commas(prof.total_params) << " parameters (" << mb << "), " << si(double(prof.total_macs))
     << " MACs (" << with_commas(prof.total_macs) << ")\n";
  if (prof.carried_ops.empty()) {
    os << "every op is understood by the compression passes\n";
  } else {
    os << "carried through unchanged (not understood by the compression passes):";
    for (const auto& kv : prof.carried_ops) os << " " << kv.first << " x" << kv.second;
    os << "\n";
  }
  return os.str();
}

nlohmann::json profile_to_json(const ModelProfile& prof, const std::string& model_path) {
  nlohmann::json j;
  j["model"] = model_path;
  j["input_shapes"] = prof.input_shapes;
  j["total_params"] = prof.total_params;
  j["total_macs"] = prof.total_macs;
  j["param_bytes"] = prof.param_bytes;
  j["buffer_bytes"] = prof.buffer_bytes;
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : prof.nodes) {
    nlohmann::json e;
    e["name"] = n.name;
    e["op"] = n.op;
    e["output_shapes"] = n.output_shapes;
    e["params"] = n.params;
    e["param_bytes"] = n.param_bytes;
    e["macs"] = n.macs;
    e["share"] = prof.total_macs ? double(n.macs) / double(prof.total_macs) : 0.0;
    e["understood"] = n.understood;
    nodes.push_back(e);
  }
  j["nodes"] = nodes;
  nlohmann::json carried = nlohmann::json::object();
  for (const auto& kv : prof.carried_ops) carried[kv.first] = kv.second;
  j["carried_ops"] = carried;
  return j;
}

}  // namespace compress::cli
