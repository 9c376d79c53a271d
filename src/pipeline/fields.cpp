#include "compress/pipeline/fields.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "compress/error.h"

namespace compress::pipeline {

namespace {

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string range_text(double lo, double hi, bool lo_open, bool hi_open) {
  const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
  if (has_lo && has_hi)
    return std::string("in ") + (lo_open ? "(" : "[") + number_text(lo) + ", " + number_text(hi) + (hi_open ? ")" : "]");
  if (has_lo) return std::string(lo_open ? "greater than " : "at least ") + number_text(lo);
  return std::string(hi_open ? "less than " : "at most ") + number_text(hi);
}

}  // namespace

Fields::Fields(const nlohmann::json& object, std::string path, std::vector<std::string>& errors)
    : object_(object), path_(std::move(path)), errors_(errors) {
  if (!object_.is_object()) {
    errors_.push_back((path_.empty() ? std::string("the recipe") : path_) + ": expected an object, got " +
                      object_.type_name());
    valid_ = false;
  }
}

bool Fields::has(const std::string& key) const { return valid_ && object_.contains(key); }

std::string Fields::path_of(const std::string& key) const {
  if (key.empty()) return path_.empty() ? "the recipe" : path_;
  return path_.empty() ? key : path_ + "." + key;
}

void Fields::error(const std::string& key, const std::string& message) {
  errors_.push_back(path_of(key) + ": " + message);
}

const nlohmann::json* Fields::raw(const std::string& key) {
  known_.push_back(key);
  if (!has(key)) return nullptr;
  return &object_.at(key);
}

const nlohmann::json* Fields::get(const std::string& key, bool (nlohmann::json::*is)() const noexcept,
                                  const char* type) {
  const nlohmann::json* v = raw(key);
  if (!v) return nullptr;
  if (!((*v).*is)()) {
    error(key, std::string("expected ") + type + ", got " + v->type_name() + " " + v->dump());
    return nullptr;
  }
  return v;
}

double Fields::number(const std::string& key, double def, double lo, double hi, bool lo_open, bool hi_open) {
  return optional_number(key, lo, hi, lo_open, hi_open).value_or(def);
}

std::optional<double> Fields::optional_number(const std::string& key, double lo, double hi, bool lo_open,
                                              bool hi_open) {
  const nlohmann::json* v = get(key, &nlohmann::json::is_number, "a number");
  if (!v) return std::nullopt;
  const double x = v->get<double>();
  const bool below = lo_open ? !(x > lo) : !(x >= lo), above = hi_open ? !(x < hi) : !(x <= hi);
  if (below || above) {
    error(key, number_text(x) + " is out of range: must be " + range_text(lo, hi, lo_open, hi_open));
    return std::nullopt;
  }
  return x;
}

int64_t Fields::integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
  const nlohmann::json* v = raw(key);
  if (!v) return def;
  if (!v->is_number_integer()) {
    error(key, std::string("expected an integer, got ") + v->type_name() + " " + v->dump());
    return def;
  }
  const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                        ? std::numeric_limits<int64_t>::max()
                        : v->get<int64_t>();
  if (x < lo || x > hi) {
    error(key, std::to_string(x) + " is out of range: must be " +
                   range_text(lo == std::numeric_limits<int64_t>::min() ? -INFINITY : double(lo),
                              hi == std::numeric_limits<int64_t>::max() ? INFINITY : double(hi), false, false));
    return def;
  }
  return x;
}

bool Fields::boolean(const std::string& key, bool def) {
  const nlohmann::json* v = get(key, &nlohmann::json::is_boolean, "true or false");
  return v ? v->get<bool>() : def;
}

std::string Fields::string(const std::string& key, const std::string& def, const std::vector<std::string>& allowed) {
  const nlohmann::json* v = get(key, &nlohmann::json::is_string, "a string");
  if (!v) return def;
  std::string s = v->get<std::string>();
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    error(key, "'" + s + "' is not one of " + list + " (did you mean '" + closest_name(s, allowed) + "'?)");
    return def;
  }
  return s;
}

std::vector<std::string> Fields::strings(const std::string& key, const std::vector<std::string>& def,
                                         const std::vector<std::string>& allowed) {
  const nlohmann::json* v = get(key, &nlohmann::json::is_array, "an array of strings");
  if (!v) return def;
  std::vector<std::string> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string at = key + "[" + std::to_string(i) + "]";
    const nlohmann::json& e = (*v)[i];
    if (!e.is_string()) {
      error(at, std::string("expected a string, got ") + e.type_name());
      continue;
    }
    std::string s = e.get<std::string>();
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      error(at, "'" + s + "' is unknown (did you mean '" + closest_name(s, allowed) + "'?)");
      continue;
    }
    out.push_back(s);
  }
  return out;
}

std::vector<int64_t> Fields::integers(const std::string& key, const std::vector<int64_t>& def, int64_t lo) {
  const nlohmann::json* v = get(key, &nlohmann::json::is_array, "an array of integers");
  if (!v) return def;
  if (v->empty()) {
    error(key, "expected at least one integer");
    return def;
  }
  std::vector<int64_t> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const nlohmann::json& e = (*v)[i];
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (!e.is_number_integer()) {
      error(at, std::string("expected an integer, got ") + e.type_name() + " " + e.dump());
      return def;
    }
    if (e.get<int64_t>() < lo) {
      error(at, std::to_string(e.get<int64_t>()) + " is out of range: must be at least " + std::to_string(lo));
      return def;
    }
    out.push_back(e.get<int64_t>());
  }
  return out;
}

const nlohmann::json* Fields::object(const std::string& key) {
  return get(key, &nlohmann::json::is_object, "an object");
}

void Fields::finish() {
  if (!valid_) return;
  for (const auto& kv : object_.items()) {
    if (std::find(known_.begin(), known_.end(), kv.key()) != known_.end()) continue;
    std::vector<std::string> candidates = known_;
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    std::string msg = "unknown key";
    if (!candidates.empty()) msg += " (did you mean '" + closest_name(kv.key(), candidates) + "'?)";
    error(kv.key(), msg);
  }
}

}  // namespace compress::pipeline
