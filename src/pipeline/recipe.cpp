#include "compress/pipeline/recipe.h"

#include <filesystem>
#include <fstream>
#include <regex>

#include "compress/analysis/inputs.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/models/zoo.h"

namespace fs = std::filesystem;

namespace compress::pipeline {

namespace {

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute() || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

bool is_dataset_name(const std::string& s) { return s == "fashion-mnist"; }

void require_file(Fields& f, const std::string& key, const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) f.error(key, "no such file: " + path);
  else if (!fs::is_regular_file(path, ec)) f.error(key, "not a regular file: " + path);
}

}  // namespace

std::string ModelRef::text() const {
  switch (kind) {
    case StageOutput: return "stage " + std::to_string(stage);
    case StageInput: return "before stage " + std::to_string(stage);
    default: return file;
  }
}

std::optional<ModelRef> parse_model_ref(Fields& f, const std::string& key, int64_t index, const std::string& base_dir) {
  const std::string text = f.string(key, "");
  if (!f.has(key)) {
    f.error(key, "missing: a model file, \"stage N\" or \"before stage N\"");
    return std::nullopt;
  }
  if (text.empty()) {  // not a string (reported already) or ""
    if (f.raw(key)->is_string()) f.error(key, "empty: give a model file, \"stage N\" or \"before stage N\"");
    return std::nullopt;
  }
  static const std::regex stage_form(R"(^\s*(before\s+)?stage\s*\[?\s*(-?\d+)\s*\]?\s*$)", std::regex::icase);
  std::smatch m;
  ModelRef ref;
  if (std::regex_match(text, m, stage_form)) {
    ref.kind = m[1].matched ? ModelRef::StageInput : ModelRef::StageOutput;
    try {
      ref.stage = std::stoll(m[2].str());
    } catch (const std::out_of_range&) {  // more digits than int64 holds (fuzz_recipe)
      f.error(key, "'" + text + "': no such stage");
      return std::nullopt;
    }
    if (ref.stage < 0) {
      f.error(key, "'" + text + "': stages are numbered from 0");
      return std::nullopt;
    }
    // A stage's own output does not exist yet; the model before it does.
    const bool later = ref.kind == ModelRef::StageOutput ? ref.stage >= index : ref.stage > index;
    if (later) {
      f.error(key, "'" + text + "' refers to a later stage (this is stage " + std::to_string(index) +
                       "; use \"stage N\" with N < " + std::to_string(index) + " or \"before stage N\" with N <= " +
                       std::to_string(index) + ")");
      return std::nullopt;
    }
    return ref;
  }
  ref.file = resolve(base_dir, text);
  require_file(f, key, ref.file);
  return ref;
}

nlohmann::json DataSpec::to_json() const {
  return {{"source", source}, {"dir", dir}, {"train_limit", train_limit}, {"test_limit", test_limit}};
}

namespace {
data::TensorDataset load_split(const DataSpec& s, const std::string& split, int64_t limit) {
  if (s.source.empty()) bad_input("this stage needs data, and the recipe gives none");
  data::TensorDataset ds = is_dataset_name(s.source) ? data::load_fashion_mnist(split, s.dir)
                                                      : data::load_tensor_dataset(s.source);
  if (ds.size() == 0) bad_input("data " + s.source + ": the data set is empty");
  return limit > 0 ? data::take(ds, limit) : ds;
}
}  // namespace

const data::TensorDataset& DataCache::train() {
  if (!train_) train_ = load_split(spec_, "train", spec_.train_limit);
  return *train_;
}

const data::TensorDataset& DataCache::test() {
  if (!test_) test_ = load_split(spec_, "test", spec_.test_limit);
  return *test_;
}

std::vector<std::string> parse_recipe(const nlohmann::json& j, const std::string& base_dir, Recipe& r) {
  std::vector<std::string> errors;
  r = Recipe{};
  r.source = j;
  r.base_dir = base_dir;
  Fields top(j, "", errors);
  if (!j.is_object()) return errors;
  top.string("description", "");

  if (const nlohmann::json* m = top.object("model")) {
    Fields f(*m, "model", errors);
    r.model_file = resolve(base_dir, f.string("file", ""));
    r.arch = f.string("arch", "", models::zoo_names());
    r.width = f.number("width", 1.0, 0, 16, /*lo_open=*/true);
    r.seed = uint64_t(f.integer("seed", 0, 0));
    if (f.has("file") && f.has("arch"))
      f.error("", "give one of \"file\" (a saved model) or \"arch\" (a zoo architecture), not both");
    else if (!f.has("file") && !f.has("arch"))
      f.error("", "missing: \"file\" (a saved model) or \"arch\" (a zoo architecture)");
    if (!r.model_file.empty()) require_file(f, "file", r.model_file);
    if (!r.model_file.empty() && (f.has("width") || f.has("seed")))
      f.error(f.has("width") ? "width" : "seed", "applies to \"arch\" only, not to a saved model");
    f.finish();
  } else if (!top.has("model")) {
    top.error("model", "missing: give {\"file\": \"model.pt\"} or {\"arch\": \"cnn\"}");
  }

  if (const nlohmann::json* d = top.object("data")) {
    Fields f(*d, "data", errors);
    r.data.source = f.string("source", "");
    if (!f.has("source")) f.error("source", "missing: \"fashion-mnist\" or a tensor dataset file (.pt)");
    if (!r.data.source.empty() && !is_dataset_name(r.data.source)) {
      r.data.source = resolve(base_dir, r.data.source);
      if (r.data.source.size() < 3 || r.data.source.substr(r.data.source.size() - 3) != ".pt")
        f.error("source", "'" + r.data.source + "' is neither fashion-mnist nor a tensor dataset file (.pt)");
      else
        require_file(f, "source", r.data.source);
    }
    r.data.dir = f.string("dir", "");
    r.data.train_limit = f.integer("train_limit", 0, 0);
    r.data.test_limit = f.integer("test_limit", 0, 0);
    f.finish();
  }
  if (top.has("input_shape")) {
    r.input_shape = top.integers("input_shape", {}, 1);
    if (!r.input_shape.empty() && r.input_shape.size() < 2)
      top.error("input_shape", "expected [N, C, ...] with the batch dimension first");
  } else if (r.data.source.empty() && top.has("model")) {
    top.error("input_shape", "missing: required when the recipe gives no data (e.g. [1, 3, 224, 224])");
  }
  r.input_dtype = top.string("input_dtype", "");
  if (!r.input_dtype.empty()) {
    try {
      parse_dtype(r.input_dtype, "input_dtype");
    } catch (const Error& e) {
      top.error("input_dtype", e.what());
    }
  }
  r.measure_accuracy = top.boolean("measure_accuracy", !r.data.source.empty());
  if (r.measure_accuracy && r.data.source.empty() && top.has("measure_accuracy"))
    top.error("measure_accuracy", "needs \"data\"");
  r.threads = int(top.integer("threads", 2, 1, 1024));

  std::vector<std::string> kind_names;
  for (const auto& k : stage_kinds()) kind_names.push_back(k.name);
  if (const nlohmann::json* stages = top.raw("stages")) {
    if (!stages->is_array()) {
      top.error("stages", std::string("expected an array of stages, got ") + stages->type_name());
    } else {
      for (size_t i = 0; i < stages->size(); ++i) {
        const std::string path = "stages[" + std::to_string(i) + "]";
        const nlohmann::json& s = (*stages)[i];
        StageSpec spec;
        if (!s.is_object() || s.size() != 1) {
          errors.push_back(path + ": expected an object with one key, the stage kind, e.g. {\"prune\": {...}}");
          r.stages.push_back(std::move(spec));
          continue;
        }
        spec.kind = s.begin().key();
        const StageKind* kind = nullptr;
        for (const auto& k : stage_kinds())
          if (spec.kind == k.name) kind = &k;
        if (!kind) {
          errors.push_back(path + ": unknown stage '" + spec.kind + "' (did you mean '" +
                           closest_name(spec.kind, kind_names) + "'?)");
          r.stages.push_back(std::move(spec));
          continue;
        }
        Fields f(s.begin().value(), path + "." + spec.kind, errors);
        spec.stage = kind->parse(f, ParseInfo{int64_t(i), r.arch, base_dir});
        f.finish();
        r.stages.push_back(std::move(spec));
      }
    }
  } else {
    top.error("stages", "missing: an array of stages");
  }
  top.finish();

  // Across stages.
  if (!r.arch.empty() && r.model_file.empty() && !r.stages.empty() && r.stages[0].kind != "train")
    errors.push_back("stages[0]: the model is a new (untrained) \"" + r.arch + "\": the first stage must be train");
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const auto& s = r.stages[i];
    if (!s.stage) continue;
    const std::string path = "stages[" + std::to_string(i) + "]." + s.kind;
    if (s.stage->needs_data() && r.data.source.empty())
      errors.push_back(path + ": needs labelled data: the recipe gives no \"data\"");
    for (const ModelRef& ref : s.stage->model_refs()) {
      if (ref.kind != ModelRef::StageOutput || ref.stage >= int64_t(r.stages.size())) continue;
      const auto& target = r.stages[size_t(ref.stage)];
      if (target.stage && !target.stage->makes_model())
        errors.push_back(path + ": '" + ref.text() + "' makes no model (stages[" + std::to_string(ref.stage) + "] is " +
                         target.kind + ")");
    }
  }
  return errors;
}

Recipe load_recipe(const std::string& path) {
  require_input_file(path);
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    bad_input(path + ": not valid JSON (byte " + std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::out_of_range&) {
    // A number too large for a double (fuzz_recipe: "5500E0000...05").
    bad_input(path + ": not valid JSON (a number out of range)");
  }
  Recipe r;
  std::vector<std::string> errors = parse_recipe(j, fs::path(path).parent_path().string(), r);
  if (!errors.empty()) {
    std::string all;
    for (const auto& e : errors) all += (all.empty() ? "" : "\n") + path + ": " + e;
    bad_input(all);
  }
  return r;
}

}  // namespace compress::pipeline
