#pragma once
// Data-parallel training options shared by the commands that train (`train`,
// `prune --finetune-epochs`): --nproc N launches N local workers of the same
// command; a worker (or a process started by hand or by torchrun with
// MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK) joins the job's
// Gloo process group. docs/distributed.md.
#include <memory>
#include <optional>

#include <cxxopts.hpp>

#include "compress/train/distributed.h"
#include "compress/train/trainer.h"

namespace compress::cli {

void add_distributed_options(cxxopts::Options& opts);

// With --nproc N: starts N workers of this command (this executable, the same
// arguments without --nproc, torchrun's variables set, --threads cores/N
// unless given), waits for them and returns the exit code: 0 when all
// succeeded; else the first failure's code (1 when it was killed by a
// signal), after letting the others stop on their own for the collective
// timeout and then killing what is left. Without --nproc: nothing.
// `argv[0]` is the command's name (as main() passes it).
std::optional<int> launch_workers(const cxxopts::ParseResult& r, int argc, char** argv);

// The job this process belongs to, from the environment: null for a single
// process. Error(BadInput) for bad variables or an unreachable master.
std::shared_ptr<train::ProcessGroup> join_job(const cxxopts::ParseResult& r);

// --batch-norm, --bucket-mb, --no-overlap and the group into `cfg`.
void apply_distributed_options(const cxxopts::ParseResult& r, std::shared_ptr<train::ProcessGroup> group,
                               train::TrainConfig& cfg);

}  // namespace compress::cli
