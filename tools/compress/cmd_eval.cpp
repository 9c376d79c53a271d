// compress eval: test accuracy (and optionally latency) of a saved model.
#include <ATen/Parallel.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "commands.h"
#include "parse_args.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/train/evaluate.h"
#include "compress/threads.h"
#include "data_option.h"

namespace compress::cli {

namespace {
template <typename T>
std::vector<T> parse_list(const std::string& s, const char* option) {
  std::vector<T> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      long long v = std::stoll(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument(item);
      out.push_back(T(v));
    } catch (const std::exception&) {
      bad_input(std::string("--") + option + ": '" + item + "' is not a positive integer");
    }
  }
  if (out.empty()) bad_input(std::string("--") + option + ": empty list");
  return out;
}
}  // namespace

int cmd_eval(int argc, char** argv) {
  cxxopts::Options opts("compress eval", "Evaluate a TorchScript classifier: top-1/top-5, loss, confusion matrix,\n"
                                         "and with --latency its speed at given batch sizes and thread counts.");
  opts.add_options()
      ("model", "the TorchScript model", cxxopts::value<std::string>())
      ("data", "fashion-mnist or a tensor dataset file (.pt)", cxxopts::value<std::string>()->default_value(""))
      ("data-dir", "folder holding the Fashion-MNIST IDX files", cxxopts::value<std::string>()->default_value(""))
      ("split", "train or test", cxxopts::value<std::string>()->default_value("test"))
      ("batch-size", "evaluation batch size", cxxopts::value<int64_t>()->default_value("500"))
      ("threads", "intra-op threads for the accuracy pass", cxxopts::value<int>()->default_value("2"))
      ("latency", "also measure latency / throughput")
      ("latency-batches", "batch sizes, comma-separated", cxxopts::value<std::string>()->default_value("1,32"))
      ("latency-threads", "thread counts, comma-separated", cxxopts::value<std::string>()->default_value("1,2"))
      ("repeats", "timed runs per point (median reported)", cxxopts::value<int>()->default_value("20"))
      ("json", "print the result as JSON (with the confusion matrix)")
      ("h,help", "show this help");
  opts.parse_positional({"model"});
  opts.positional_help("MODEL");
  auto r = parse_args(opts, argc, argv);
  if (r.count("help")) {
    std::printf("%s\n", opts.help().c_str());
    return 0;
  }
  if (!r.count("model")) bad_input("no model given (compress eval MODEL --data fashion-mnist)");
  const std::string path = r["model"].as<std::string>(), data = r["data"].as<std::string>();
  const int64_t bs = r["batch-size"].as<int64_t>();
  if (bs < 1) bad_input("--batch-size must be positive");
  const int threads = r["threads"].as<int>();
  if (threads < 1) bad_input("--threads must be at least 1");
  torch::jit::Module m = load_module(path);
  data::TensorDataset ds = load_data_option(data, r["split"].as<std::string>(), r["data-dir"].as<std::string>());
  compress::set_num_threads(threads);
  train::EvalResult ev = train::evaluate(m, ds, bs);

  std::vector<train::LatencyPoint> lat;
  if (r.count("latency")) {
    if (ds.size() == 0) bad_input("--latency: " + ds.name + " has no samples to time the model on");
    train::LatencyOptions lo;
    lo.batch_sizes = parse_list<int64_t>(r["latency-batches"].as<std::string>(), "latency-batches");
    lo.thread_counts = parse_list<int>(r["latency-threads"].as<std::string>(), "latency-threads");
    lo.repeats = r["repeats"].as<int>();
    // Batches of the data set's own samples (its dtype: token ids stay ids), repeated when it is smaller.
    const at::Tensor inputs = ds.inputs;
    const train::LatencyInputs samples = [&inputs](int64_t b) {
      const at::Tensor rows = at::arange(b, at::kLong).remainder(inputs.size(0));
      return std::vector<c10::IValue>{inputs.index_select(0, rows)};
    };
    lat = train::measure_latency(m, samples, lo);
  }
  const char* const* names = data == "fashion-mnist" ? data::fashion_mnist_class_names() : nullptr;
  if (r.count("json")) {
    nlohmann::json j = nlohmann::json::parse(ev.to_json(names));
    j["model"] = path;
    j["data"] = ds.name;
    if (!lat.empty()) j["latency"] = nlohmann::json::parse(train::latency_to_json(lat));
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s on %s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld samples, %.1fs)\n", path.c_str(),
              ds.name.c_str(), 100 * ev.top1, 100 * ev.top5, ev.loss, (long long)ev.count, ev.seconds);
  for (const auto& p : lat) {
    std::printf("latency: batch %lld, %d thread%s: median %.3f ms (min %.3f, p90 %.3f), %.0f samples/s\n",
                (long long)p.batch, p.threads, p.threads == 1 ? "" : "s", p.median_ms, p.min_ms, p.p90_ms,
                p.samples_per_s);
  }
  return 0;
}

}  // namespace compress::cli
