#pragma once
// Reading a JSON object field by field with every problem collected, each
// named by its JSON path ("stages[1].distill.temprature: unknown key (did you
// mean 'temperature'?)"), so a recipe is checked completely before anything
// runs. A getter returns the value, or the default when the key is absent or
// wrong (the error is recorded, never thrown); finish() reports the keys no
// getter asked for, with the closest valid name.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace compress::pipeline {

class Fields {
 public:
  // `object` must outlive this; `errors` collects one line per problem.
  // A non-object records an error and reads as empty.
  Fields(const nlohmann::json& object, std::string path, std::vector<std::string>& errors);

  bool has(const std::string& key) const;
  // "stages[1].distill" + "alpha" -> "stages[1].distill.alpha"
  std::string path_of(const std::string& key) const;
  const std::string& path() const { return path_; }
  void error(const std::string& key, const std::string& message);  // key "" names the object itself
  std::vector<std::string>& errors() { return errors_; }

  // Numbers in [lo, hi] (open ends when lo_open / hi_open).
  double number(const std::string& key, double def, double lo = -std::numeric_limits<double>::infinity(),
                double hi = std::numeric_limits<double>::infinity(), bool lo_open = false, bool hi_open = false);
  std::optional<double> optional_number(const std::string& key, double lo, double hi, bool lo_open = false,
                                        bool hi_open = false);
  int64_t integer(const std::string& key, int64_t def, int64_t lo = std::numeric_limits<int64_t>::min(),
                  int64_t hi = std::numeric_limits<int64_t>::max());
  bool boolean(const std::string& key, bool def);
  // A string; when `allowed` is not empty, one of them (the closest is suggested).
  std::string string(const std::string& key, const std::string& def, const std::vector<std::string>& allowed = {});
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& def = {},
                                   const std::vector<std::string>& allowed = {});
  std::vector<int64_t> integers(const std::string& key, const std::vector<int64_t>& def, int64_t lo);
  // A nested object (nullptr when absent; an error when not an object).
  const nlohmann::json* object(const std::string& key);
  // The raw value, marking the key known (nullptr when absent).
  const nlohmann::json* raw(const std::string& key);

  // Records every key no getter asked for.
  void finish();

 private:
  const nlohmann::json* get(const std::string& key, bool (nlohmann::json::*is)() const noexcept, const char* type);
  const nlohmann::json& object_;
  std::string path_;
  std::vector<std::string>& errors_;
  std::vector<std::string> known_;
  bool valid_ = true;
};

}  // namespace compress::pipeline
