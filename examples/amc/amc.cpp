// AMC with the C++ API: a DDPG agent searches one keep ratio per prunable
// channel group of a trained classifier under a MACs budget, then the model
// is pruned with the best ratios found and scored on the test set:
//
//   amc_example MODEL.pt fashion-mnist|DATA.pt RATIOS.json [EPISODES] [PRUNED.pt]
//
// The same as `compress amc MODEL.pt --data ... --target-macs 0.5 --episodes
// EPISODES --warmup EPISODES/3 -o RATIOS.json --prune-to PRUNED.pt`; the ratios
// file feeds `compress prune --ratios` (e.g. before fine-tuning).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include <compress/amc/environment.h>
#include <compress/analysis/profile.h>
#include <compress/cpu_block_cache.h>
#include <compress/data/dataset.h>
#include <compress/error.h>
#include <compress/io.h>
#include <compress/ir/export.h>
#include <compress/ir/import.h>
#include <compress/train/evaluate.h>

using namespace compress;

int main(int argc, char** argv) {
  // Training and evaluation loops reuse their freed blocks (several times faster; docs/performance.md).
  compress::install_cpu_block_cache_from_env();
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.pt fashion-mnist|DATA.pt RATIOS.json [EPISODES] [PRUNED.pt]\n", argv[0]);
    return 2;
  }
  try {
    const std::string data = argv[2];
    const bool fmnist = data == "fashion-mnist";
    data::TensorDataset train = fmnist ? data::load_fashion_mnist("train") : data::load_tensor_dataset(data);
    data::TensorDataset test = fmnist ? data::load_fashion_mnist("test") : train;
    const int64_t episodes = argc > 4 ? std::atoll(argv[4]) : 150;
    const int64_t warmup = episodes / 3;
    amc::check_search_lengths(episodes, warmup);  // before the slow parts

    Graph graph = import_module(load_module(argv[1]));
    Shape sample = train.inputs.sizes().vec();
    sample[0] = 1;
    graph.set_example_inputs({InputSpec{sample}});

    // Episodes are scored on images held out of the training split; batch
    // norms are re-estimated on 4 other training batches after each pruning.
    const int64_t val_size = std::min<int64_t>(1000, train.size() / 4);
    amc::SearchData split = amc::split_search_data(train, val_size, /*recalibrate_batches=*/4, /*seed=*/1, data);
    amc::PruningEnvConfig ec;
    ec.target_macs = 0.5;
    ec.recalibrate_batches = 4;
    amc::PruningEnvironment env(graph, split.validation, &split.calibration, ec);

    amc::DdpgConfig dc;  // AMC's settings; the action is a keep ratio in [min_keep, 1]
    dc.seed = 1;
    dc.action_low = ec.min_keep;
    amc::SearchResult r = amc::search(env, dc, episodes, warmup, [&](const amc::EpisodeLog& e) {
      if (e.best)
        std::printf("episode %lld%s: validation top-1 %.2f%%\n", static_cast<long long>(e.episode + 1),
                    e.warmup ? " (warm-up)" : "", 100 * env.last_outcome().accuracy);
    });
    const double policy_top1 = env.last_outcome().accuracy;  // the final noise-free episode

    // The best episode's applied ratios are already clipped to the budget.
    const std::vector<int64_t> widths = env.keep_counts(r.best_actions);
    write_text_file(argv[3], nlohmann::json(env.prune_ratios(widths)).dump(2) + "\n");
    Graph small = env.pruned(widths);
    torch::jit::Module pruned = export_module(small);
    if (argc > 5) save_module(pruned, argv[5]);
    std::printf("best episode %lld (%s): %.1f%% of the MACs, test top-1 %.2f%%; the noise-free policy: %.2f%% validation\n",
                static_cast<long long>(r.best_episode + 1), r.best_episode < warmup ? "warm-up" : "trained",
                100.0 * static_cast<double>(profile_model(small).total_macs) /
                    static_cast<double>(profile_model(graph).total_macs),
                100 * train::evaluate(pruned, test).top1, 100 * policy_top1);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "amc_example: %s\n", e.what());
    return e.kind() == ErrorKind::BadInput ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amc_example: %s\n", first_line_of(e).c_str());
    return 1;
  }
}
