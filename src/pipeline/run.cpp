#include "compress/pipeline/run.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <ATen/Parallel.h>

#include "compress/analysis/inputs.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/models/zoo.h"
#include "compress/pipeline/report.h"
#include "compress/train/evaluate.h"
#include "compress/threads.h"
#include "report_format.h"
#include "stage_util.h"

namespace fs = std::filesystem;

namespace compress::pipeline {

namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull, kFnvPrime = 1099511628211ull;

uint64_t fnv(uint64_t h, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ uint8_t(data[i])) * kFnvPrime;
  return h;
}

std::string hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return nullptr;  // a report cut short is simply not reused
  }
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) return line.substr(line.find(':') + 2);
  return "unknown";
}

// Size, parameters, MACs and test top-1 of a saved model; what the stage
// reported itself (`known`) takes precedence.
nlohmann::json measure(const std::string& path, const Recipe& recipe, DataCache& data,
                       const std::vector<int64_t>& sample_shape, at::ScalarType dtype, const nlohmann::json& known) {
  nlohmann::json m = known.is_object() ? known : nlohmann::json::object();
  m["file_bytes"] = int64_t(fs::file_size(path));
  torch::jit::Module module = load_module(path);
  if (!m.contains("params")) m["params"] = models::count_parameters(module);
  if (!m.contains("macs")) {
    try {
      m["macs"] = profile_model(load_graph(path, sample_shape, dtype)).total_macs;
    } catch (const std::exception&) {
      m["macs"] = nullptr;  // a model the IR cannot read: unknown, not zero
    }
  }
  if (recipe.measure_accuracy) {
    compress::set_num_threads(recipe.threads);
    module.eval();
    m["accuracy"] = train::evaluate(module, data.test()).top1;
  }
  return m;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1e6) std::snprintf(buf, sizeof(buf), "%.2f MB", b / 1e6);
  else std::snprintf(buf, sizeof(buf), "%.1f kB", b / 1e3);
  return buf;
}

std::string summary(const nlohmann::json& m) {
  std::string s;
  char buf[64];
  if (m.contains("accuracy") && m["accuracy"].is_number()) {
    std::snprintf(buf, sizeof(buf), "top-1 %.2f%%, ", 100 * m["accuracy"].get<double>());
    s += buf;
  }
  if (m.contains("macs") && m["macs"].is_number()) {
    std::snprintf(buf, sizeof(buf), "MACs %.3g M, ", m["macs"].get<double>() / 1e6);
    s += buf;
  }
  if (m.contains("file_bytes")) s += human_bytes(m["file_bytes"].get<double>());
  return s;
}

}  // namespace

std::string hash_text(const std::string& text) { return hex(fnv(kFnvOffset, text.data(), text.size())); }

std::string hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_input("cannot read " + path);
  uint64_t h = kFnvOffset;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h = fnv(h, buf.data(), size_t(in.gcount()));
  }
  return hex(h);
}

nlohmann::json run_pipeline(const Recipe& recipe, const std::string& out_dir, const RunOptions& options) {
  auto say = [&](const std::string& line) {
    if (options.quiet) return;
    if (options.progress) options.progress(line);
    else std::fprintf(stderr, "%s\n", line.c_str());
  };
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec))
    bad_input("output folder " + out_dir + " exists and is not a folder");
  fs::create_directories(out_dir, ec);
  if (ec) bad_input("cannot create the output folder " + out_dir + ": " + ec.message());
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir(out_dir);
  DataCache data(recipe.data);

  // The shape of one input: the recipe's, else the data's.
  std::vector<int64_t> sample_shape;
  if (!recipe.input_shape.empty()) sample_shape.assign(recipe.input_shape.begin() + 1, recipe.input_shape.end());
  else if (data.available()) {
    auto sizes = data.test().inputs.sizes();
    sample_shape.assign(sizes.begin() + 1, sizes.end());
  }
  // Its dtype: the recipe's, else the data's (token ids stay integers), else float32.
  const at::ScalarType sample_dtype = !recipe.input_dtype.empty() ? parse_dtype(recipe.input_dtype, "input_dtype")
                                      : data.available()          ? data.test().inputs.scalar_type()
                                                                  : at::kFloat;
  const std::string data_key = recipe.data.to_json().dump() + (recipe.measure_accuracy ? " accuracy" : "");
  const std::string input_key = nlohmann::json(sample_shape).dump() + " " + dtype_name(sample_dtype);

  nlohmann::json rows = nlohmann::json::array(), stage_reports = nlohmann::json::array();
  std::vector<std::string> row_models, row_names;
  // The model the next stage starts from, its content hash and its metrics.
  std::string current, current_hash;
  nlohmann::json current_metrics;
  std::vector<std::string> stage_inputs, stage_outputs, stage_input_hashes, stage_output_hashes;

  const size_t total = recipe.stages.size() + 1;
  if (!recipe.model_file.empty()) {
    current = recipe.model_file;
    current_hash = hash_file(current);
    const fs::path input_dir = dir / "input";
    fs::create_directories(input_dir);
    const std::string key = hash_text(current_hash + " " + data_key + " " + input_key);
    nlohmann::json rep = read_json(input_dir / "report.json");
    if (!rep.is_object() || rep.value("key", "") != key) {
      say("[1/" + std::to_string(total) + "] input " + current + ": measuring");
      rep = {{"key", key}, {"model", fs::absolute(current).string()},
             {"metrics", measure(current, recipe, data, sample_shape, sample_dtype, nullptr)}};
      write_text_file((input_dir / "report.json").string(), rep.dump(2) + "\n");
    }
    current_metrics = rep["metrics"];
    say("[1/" + std::to_string(total) + "] input: " + summary(current_metrics));
    nlohmann::json row = current_metrics;
    row["name"] = "input";
    row["kind"] = "input";
    row["stage"] = -1;
    row["model"] = fs::absolute(current).string();
    row["seconds"] = 0;
    row["skipped"] = false;
    rows.push_back(row);
    row_models.push_back(current);
    row_names.push_back("input");
  } else {
    const fs::path init_dir = dir / "init";
    fs::create_directories(init_dir);
    const nlohmann::json desc = {{"arch", recipe.arch}, {"width", recipe.width}, {"seed", recipe.seed}};
    const std::string init = (init_dir / "model.pt").string();
    if (read_json(init_dir / "model.json") != desc || !fs::exists(init)) {
      save_module(models::build(recipe.arch, recipe.seed, 10, recipe.width).module, init);
      write_text_file((init_dir / "model.json").string(), desc.dump(2) + "\n");
    }
    current = init;
    current_hash = hash_text(desc.dump());  // the build is deterministic; its bytes need not be
    char width[32];
    std::snprintf(width, sizeof(width), "%g", recipe.width);
    say("[1/" + std::to_string(total) + "] init: new " + recipe.arch + " (width " + width + ")");
  }

  auto resolve_ref = [&](const ModelRef& ref, std::string& hash) -> std::string {
    if (ref.kind == ModelRef::File) {
      hash = hash_file(ref.file);
      return ref.file;
    }
    const size_t i = size_t(ref.stage);
    if (ref.kind == ModelRef::StageInput) {
      hash = stage_input_hashes.at(i);
      return stage_inputs.at(i);
    }
    hash = stage_output_hashes.at(i);
    return stage_outputs.at(i);
  };

  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const StageSpec& spec = recipe.stages[i];
    Stage& stage = *spec.stage;
    const std::string name = stage_folder(int64_t(i), spec.kind);
    const fs::path sdir = dir / name;
    const std::string progress = "[" + std::to_string(i + 2) + "/" + std::to_string(total) + "] " + name;
    stage_inputs.push_back(current);
    stage_input_hashes.push_back(current_hash);

    StageContext ctx{recipe, int64_t(i), current, (sdir / "model.pt").string(), sdir.string(), "", {}, {}, {},
                     current_metrics, data, sample_shape, sample_dtype, options.quiet};
    std::string key_text = spec.kind + "\n" + stage.options().dump() + "\n" + current_hash + "\n" + data_key + "\n" +
                           input_key;
    for (const ModelRef& ref : stage.model_refs()) {
      std::string h;
      ctx.ref_models.push_back(resolve_ref(ref, h));
      key_text += "\n" + h;
    }
    if (spec.kind == "bench") {
      ctx.row_models = row_models;
      ctx.row_names = row_names;
      for (const auto& r : rows) key_text += "\n" + r["name"].get<std::string>();
      for (const auto& m : row_models) key_text += "\n" + hash_file(m);
    }
    ctx.key = hash_text(key_text);

    nlohmann::json rep = read_json(sdir / "report.json");
    const bool reuse = rep.is_object() && rep.value("key", "") == ctx.key &&
                       (!stage.makes_model() ||
                        (fs::exists(ctx.output_model) && rep.value("output_hash", "") == hash_file(ctx.output_model)));
    if (reuse) {
      rep["skipped"] = true;
      const std::string m = summary(rep["metrics"]);
      say(progress + ": unchanged, skipped" + (m.empty() ? std::string() : " (" + m + ")"));
    } else {
      // A folder left by a run with other inputs or options: its checkpoints are not ours.
      fs::create_directories(sdir);
      nlohmann::json started = read_json(sdir / "started.json");
      if (started.is_object() && started.value("key", "") != ctx.key) {
        for (const auto& e : fs::directory_iterator(sdir)) fs::remove_all(e.path());
      }
      write_text_file((sdir / "started.json").string(), nlohmann::json{{"key", ctx.key}}.dump() + "\n");
      say(progress + ": running");
      const auto s0 = std::chrono::steady_clock::now();
      stage.run(ctx);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
      rep = {{"index", i}, {"kind", spec.kind}, {"key", ctx.key}, {"options", stage.options()},
             {"seconds", seconds}, {"details", ctx.details}, {"skipped", false}};
      if (stage.makes_model()) {
        rep["output_hash"] = hash_file(ctx.output_model);
        rep["metrics"] = measure(ctx.output_model, recipe, data, sample_shape, sample_dtype, ctx.metrics);
      } else {
        rep["metrics"] = nlohmann::json::object();
      }
      write_text_file((sdir / "report.json").string(), rep.dump(2) + "\n");
      for (const auto& e : fs::directory_iterator(sdir)) {
        const std::string f = e.path().filename().string();
        if (f.rfind("checkpoint", 0) == 0 || f == "started.json") fs::remove(e.path());
      }
      char buf[64];
      std::snprintf(buf, sizeof(buf), ": done in %.1f s", seconds);
      say(progress + buf + (stage.makes_model() ? " (" + summary(rep["metrics"]) + ")" : std::string()));
    }
    stage_reports.push_back(rep);
    if (stage.makes_model()) {
      current = ctx.output_model;
      current_hash = rep["output_hash"].get<std::string>();
      current_metrics = rep["metrics"];
      nlohmann::json row = current_metrics;
      row["name"] = name;
      row["kind"] = spec.kind;
      row["stage"] = i;
      row["model"] = name + "/model.pt";
      row["seconds"] = rep["seconds"];
      row["skipped"] = rep["skipped"];
      rows.push_back(row);
      row_models.push_back(current);
      row_names.push_back(name);
    }
    stage_outputs.push_back(current);
    stage_output_hashes.push_back(current_hash);
  }

  // Latency and evaluations land on the rows they measured.
  for (const auto& rep : stage_reports) {
    if (rep["kind"] != "bench") continue;
    for (const auto& b : rep["details"]["rows"])
      for (auto& row : rows)
        if (row["name"] == b["row"]) row["latency_ms"] = b["latency_ms"];
  }
  nlohmann::json report = {
      {"report", "compress-pipeline"},
      {"version", 1},
      {"recipe", recipe.source},
      {"machine", {{"cpu", cpu_model()}, {"hardware_threads", std::thread::hardware_concurrency()}}},
      {"threads", recipe.threads},
      {"sample_shape", sample_shape},
      {"sample_dtype", dtype_name(sample_dtype)},
      {"total_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
      {"rows", rows},
      {"stages", stage_reports}};
  write_text_file((dir / "report.json").string(), report.dump(2) + "\n");
  write_text_file((dir / "report.md").string(), report_markdown(report));
  write_text_file((dir / "report.html").string(), report_html(report));
  return report;
}

}  // namespace compress::pipeline
