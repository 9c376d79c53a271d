#include "distributed_option.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "compress/error.h"

namespace compress::cli {

void add_distributed_options(cxxopts::Options& opts) {
  opts.add_options("Data-parallel (docs/distributed.md)")
      ("nproc", "train with N local worker processes (sets --threads to cores/N unless given)",
       cxxopts::value<int>())
      ("batch-norm", "batch norm while training: local (per-rank statistics, as DDP), sync (the global "
       "batch's statistics) or frozen (eval-mode BN)",
       cxxopts::value<std::string>()->default_value("local"))
      ("dist-timeout", "seconds a collective waits for the other ranks before failing",
       cxxopts::value<double>()->default_value("30"))
      ("rendezvous-timeout", "seconds to wait for every rank to join",
       cxxopts::value<double>()->default_value("300"))
      ("bucket-mb", "gradient all-reduce bucket size in MiB", cxxopts::value<double>()->default_value("1"))
      ("no-overlap", "all-reduce the gradients after backward instead of during it");
}

namespace {

std::chrono::milliseconds seconds_option(const cxxopts::ParseResult& r, const char* name) {
  const double s = r[name].as<double>();
  if (!(s > 0) || s > 1e6) bad_input(std::string("--") + name + " must be a positive number of seconds");
  return std::chrono::milliseconds(int64_t(s * 1000));
}

int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// A TCP port on loopback that nobody listens on right now.
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) failure("cannot open a socket to find a free port");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    failure("cannot find a free port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

volatile sig_atomic_t g_stop_signal = 0;
void remember_signal(int sig) { g_stop_signal = sig; }

}  // namespace

std::optional<int> launch_workers(const cxxopts::ParseResult& r, int argc, char** argv) {
  if (!r.count("nproc")) return std::nullopt;
  const std::string command = argv[0];
  const int n = r["nproc"].as<int>();
  if (n < 1) bad_input("--nproc must be at least 1");
  if (std::getenv("RANK") || std::getenv("WORLD_SIZE")) {
    bad_input("--nproc starts its own workers: unset RANK/WORLD_SIZE, or drop --nproc to join their job");
  }
  const int cores = usable_cores();
  if (n > cores) {
    std::fprintf(stderr, "compress %s: warning: --nproc %d is more than the %d cores here; the workers will share them\n",
                 command.c_str(), n, cores);
  }
  const std::chrono::milliseconds grace = seconds_option(r, "dist-timeout") + std::chrono::seconds(5);

  // The workers' command line: this one without --nproc, with --threads.
  std::vector<std::string> args = {"/proc/self/exe", command};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0) continue;
    args.push_back(a);
  }
  if (!r.count("threads")) {
    args.push_back("--threads");
    args.push_back(std::to_string(std::max(1, cores / n)));
  }
  char exe[4096];
  const ssize_t len = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) failure("cannot find this executable (/proc/self/exe)");
  exe[len] = '\0';
  args[0] = exe;
  const std::string port = std::to_string(free_loopback_port());

  std::vector<pid_t> pids(size_t(n), -1);
  ::signal(SIGTERM, remember_signal);
  ::signal(SIGINT, remember_signal);
  for (int rank = 0; rank < n; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) failure("cannot start worker " + std::to_string(rank) + ": fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphans when the launcher dies
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
      std::vector<char*> cargs;
      for (auto& a : args) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      ::execv(exe, cargs.data());
      std::fprintf(stderr, "compress %s: error: cannot run %s for worker %d\n", command.c_str(), exe, rank);
      ::_exit(1);
    }
    pids[size_t(rank)] = pid;
  }

  int running = n, exit_code = 0;
  bool failed = false, killed_rest = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int rank = 0;
      while (rank < n && pids[size_t(rank)] != pid) ++rank;
      if (rank == n) continue;
      pids[size_t(rank)] = -1;
      --running;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && WIFSIGNALED(status) && !killed_rest) {
        std::fprintf(stderr, "compress %s: error: worker rank %d (pid %d) was killed by signal %d (%s)\n",
                     command.c_str(), rank, int(pid), WTERMSIG(status), strsignal(WTERMSIG(status)));
      }
      if (!ok && !failed) {
        failed = true;
        exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        // The others notice within the collective timeout and stop by
        // themselves, each saying why; whoever is left after that is killed.
        deadline = std::chrono::steady_clock::now() + grace;
      }
      continue;
    }
    if (g_stop_signal && !killed_rest) {
      for (pid_t p : pids) if (p > 0) ::kill(p, SIGTERM);
      killed_rest = true;
      if (!failed) failed = true, exit_code = 128 + g_stop_signal;
    }
    if (std::chrono::steady_clock::now() > deadline && !killed_rest) {
      std::string left;
      for (int k = 0; k < n; ++k) {
        if (pids[size_t(k)] > 0) {
          ::kill(pids[size_t(k)], SIGKILL);
          left += (left.empty() ? "" : ", ") + std::to_string(k);
        }
      }
      std::fprintf(stderr, "compress %s: error: killed worker rank %s, still running %lld s after the first failure\n",
                   command.c_str(), left.c_str(), (long long)(grace.count() / 1000));
      killed_rest = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  return failed ? (exit_code ? exit_code : 1) : 0;
}

std::shared_ptr<train::ProcessGroup> join_job(const cxxopts::ParseResult& r) {
  const train::DistEnv env = train::dist_env_from_environment();
  const auto dist_timeout = seconds_option(r, "dist-timeout");
  const auto rendezvous_timeout = seconds_option(r, "rendezvous-timeout");
  if (!env.distributed()) return nullptr;
  train::DistOptions o;
  o.collective_timeout = dist_timeout;
  o.rendezvous_timeout = rendezvous_timeout;
  return train::ProcessGroup::connect(env, o);
}

void apply_distributed_options(const cxxopts::ParseResult& r, std::shared_ptr<train::ProcessGroup> group,
                               train::TrainConfig& cfg) {
  cfg.group = std::move(group);
  cfg.batch_norm = r["batch-norm"].as<std::string>();
  const double mb = r["bucket-mb"].as<double>();
  if (!(mb > 0) || mb > 1024) bad_input("--bucket-mb must be in (0, 1024]");
  cfg.bucket_bytes = int64_t(mb * 1024 * 1024);
  cfg.overlap = r.count("no-overlap") == 0;
}

}  // namespace compress::cli
