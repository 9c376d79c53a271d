#pragma once
// Pipelines: a JSON recipe names a model, the data and an ordered list of
// stages (train, prune, amc, sparsify, distill, pdd, pqk, qat, quantize, eval, bench); run.h runs
// it. The format is documented in docs/pipeline.md.
//
//   pipeline::Recipe r = pipeline::load_recipe("examples/recipes/quickstart.json");   // Error(BadInput) listing every problem
//   nlohmann::json report = pipeline::run_pipeline(r, "out/quickstart");
//
// A stage is one small class (src/pipeline/stage_<kind>.cpp): its options
// read from JSON through Fields (validated, defaults filled), written back by
// options() (hashed to decide whether a rerun may skip it, and reported), and
// run() calling the library. The kinds are listed in stage_kinds().
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/dataset.h"
#include "compress/pipeline/fields.h"

namespace compress::pipeline {

// A model a stage reads besides the pipeline's current one (a teacher):
// a file, the output of an earlier stage ("stage N"), or the model an
// earlier (or this) stage started from ("before stage N"). N is the index in
// `stages`, from 0.
struct ModelRef {
  enum Kind { File, StageOutput, StageInput } kind = File;
  std::string file;  // Kind File: resolved against the recipe's folder
  int64_t stage = -1;
  std::string text() const;
};
// Reads the required model reference `key` of the stage at `index`; errors
// (missing, a later stage, a missing file) are recorded on `f` under `key`.
std::optional<ModelRef> parse_model_ref(Fields& f, const std::string& key, int64_t index, const std::string& base_dir);

struct DataSpec {
  std::string source;    // "fashion-mnist", a tensor dataset file (.pt), or "" (no data)
  std::string dir;       // Fashion-MNIST folder ("" = the packaged one)
  int64_t train_limit = 0, test_limit = 0;  // 0: all samples
  nlohmann::json to_json() const;
};

// Data loaded once per run, on first use.
class DataCache {
 public:
  explicit DataCache(DataSpec spec) : spec_(std::move(spec)) {}
  bool available() const { return !spec_.source.empty(); }
  const data::TensorDataset& train();
  const data::TensorDataset& test();
  const DataSpec& spec() const { return spec_; }

 private:
  DataSpec spec_;
  std::optional<data::TensorDataset> train_, test_;
};

struct Recipe;

// What a running stage sees. Paths are absolute or relative to the working folder.
struct StageContext {
  const Recipe& recipe;
  int64_t index = 0;
  std::string input_model;             // the model this stage starts from
  std::string output_model;            // where a model-making stage saves its result (save_module: atomic)
  std::string work_dir;                // the stage's folder (checkpoints)
  std::string key;                     // hash of the inputs and options: the checkpoints' fingerprint
  std::vector<std::string> ref_models; // the stage's model_refs(), resolved to files
  std::vector<std::string> row_models; // bench: every model of the pipeline so far, in report order
  std::vector<std::string> row_names;
  nlohmann::json input_metrics;        // of input_model (macs, params, ...) as measured before
  DataCache& data;
  std::vector<int64_t> sample_shape;   // one input without the batch dimension
  at::ScalarType sample_dtype = at::kFloat;  // its dtype (int64: token ids)
  bool quiet = false;
  // Filled by the stage: stage-specific results (report.details) and metrics
  // it knows better than a measurement of its output (an INT8 model's MACs).
  nlohmann::json details = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::object();
};

class Stage {
 public:
  virtual ~Stage() = default;
  // Whether run() writes a model (eval and bench only report).
  virtual bool makes_model() const { return true; }
  // Every option with its default filled in: reported, and hashed with the
  // inputs to decide whether a rerun may skip the stage.
  virtual nlohmann::json options() const = 0;
  // Models read besides the current one (checked and hashed by the runner).
  virtual std::vector<ModelRef> model_refs() const { return {}; }
  // Needs labelled data (the recipe must give "data").
  virtual bool needs_data() const { return false; }
  virtual void run(StageContext& ctx) = 0;
};

// What a parser of stage options knows about the recipe.
struct ParseInfo {
  int64_t index = 0;         // the stage's index in `stages`
  std::string arch;          // the zoo architecture of the model ("" for a file): default training recipe
  std::string base_dir;      // the recipe's folder, for relative paths
};

struct StageKind {
  const char* name;
  const char* summary;
  // Reads the options (every problem recorded on `f`; f.finish() is the caller's).
  std::unique_ptr<Stage> (*parse)(Fields& f, const ParseInfo& info);
};
// The stage kinds a recipe may use, in the order docs/pipeline.md lists them.
const std::vector<StageKind>& stage_kinds();

struct StageSpec {
  std::string kind;
  std::unique_ptr<Stage> stage;
};

struct Recipe {
  nlohmann::json source;     // the recipe as written
  std::string base_dir;      // relative paths in it are resolved against this folder
  // The model: a saved file, or a zoo architecture (then stages[0] trains it).
  std::string model_file;
  std::string arch;
  double width = 1.0;
  uint64_t seed = 0;
  DataSpec data;
  std::vector<int64_t> input_shape;  // [N, C, H, W...]; N is ignored; empty: from the data
  std::string input_dtype;           // "int64", ...; empty: the data's, else float32
  bool measure_accuracy = true;      // test top-1 of every model (needs data)
  int threads = 2;                   // intra-op threads of the runs (training, evaluation)
  std::vector<StageSpec> stages;
};

// Parses and validates a recipe completely. Returns every problem, one line
// each, named by JSON path; `recipe` is usable only when the list is empty.
std::vector<std::string> parse_recipe(const nlohmann::json& j, const std::string& base_dir, Recipe& recipe);
// Reads `path` (Error(BadInput) when missing or not JSON) and parses it;
// Error(BadInput) whose message is every problem, one per line.
Recipe load_recipe(const std::string& path);

}  // namespace compress::pipeline
