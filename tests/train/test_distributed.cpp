// Data-parallel training over c10d / Gloo on loopback: the sharded loader,
// 2 ranks against 1 with the same global batch, a worker killed mid-epoch
// (the other stops, the launcher fails, a resume with another world size
// finishes), and bad environment variables.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "compress/data/loader.h"
#include "compress/models/zoo.h"
#include "compress/train/trainer.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using cli_test::make_set;
using cli_test::Run;
using compress::testing::TempDir;

namespace {

// `compress ARGS` with extra environment variables; torchrun's variables of
// the test's own environment are removed first.
Run run_env(const std::string& vars, const std::string& args) {
  return cli_test::run(args, "env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u MASTER_ADDR -u MASTER_PORT " + vars);
}

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

// Runs `args` in one process (--threads 1, writing NAME1.pt) and as 2 ranks
// (--nproc 2, writing NAME2.pt); both must succeed. Returns both runs.
std::pair<Run, Run> one_process_and_two_ranks(const TempDir& dir, const std::string& args, const std::string& name) {
  Run one = run_env("", args + " --threads 1 -o " + dir.file(name + "1.pt"));
  INFO(one.out);
  REQUIRE(one.code == 0);
  Run two = run_env("", args + " --nproc 2 -o " + dir.file(name + "2.pt"));
  INFO(two.out);
  REQUIRE(two.code == 0);
  return {one, two};
}

// Relative difference ||a - b|| / ||a|| of the parameters and buffers of two
// saved models (same names required), all tensors taken as one vector; the
// largest per-tensor value goes to `worst_tensor`.
double relative_difference(const std::string& a_path, const std::string& b_path, std::string* worst_tensor = nullptr) {
  auto a = torch::jit::load(a_path), b = torch::jit::load(b_path);
  auto ta = compress::train::named_parameters(a), tb = compress::train::named_parameters(b);
  auto ba = compress::train::named_buffers(a), bb = compress::train::named_buffers(b);
  ta.insert(ta.end(), ba.begin(), ba.end());
  tb.insert(tb.end(), bb.begin(), bb.end());
  REQUIRE(ta.size() == tb.size());
  REQUIRE(ta.size() > 4);
  double worst = -1, norm2 = 0, diff2 = 0;
  for (size_t i = 0; i < ta.size(); ++i) {
    REQUIRE(ta[i].name == tb[i].name);
    at::Tensor x = ta[i].value.to(at::kDouble), y = tb[i].value.to(at::kDouble);
    const double norm = x.norm().item<double>(), diff = (x - y).norm().item<double>();
    norm2 += norm * norm;
    diff2 += diff * diff;
    const double rel = norm > 0 ? diff / norm : diff;
    if (worst_tensor && rel > worst) {
      worst = rel;
      *worst_tensor = ta[i].name + " (" + std::to_string(rel) + " of its norm " + std::to_string(norm) + ")";
    }
  }
  return std::sqrt(diff2 / norm2);
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The child of `parent` whose environment has RANK=<rank>.
pid_t worker_of(pid_t parent, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    std::ifstream env(e.path() / "environ", std::ios::binary);
    std::string var;
    while (std::getline(env, var, '\0')) {
      if (var == "RANK=" + std::to_string(rank)) return pid_t(std::stol(name));
    }
  }
  return -1;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += " " + a;
  return s;
}

}  // namespace

TEST_CASE("sharded loaders together yield the unsharded global batch, augmentation included", "[distributed][data]") {
  compress::data::TensorDataset ds;
  ds.inputs = at::rand({50, 1, 6, 6});
  ds.labels = at::arange(50);
  ds.num_classes = 50;
  compress::data::LoaderOptions lo;
  lo.batch_size = 12;
  lo.seed = 7;
  lo.drop_last = true;
  lo.augment.crop_padding = 2;
  lo.augment.horizontal_flip = true;
  compress::data::Loader whole(ds, lo);
  const auto order = compress::data::epoch_order(50, 7, 3, true);
  for (int64_t shards : {2, 3, 4}) {
    std::vector<std::unique_ptr<compress::data::Loader>> parts;
    for (int64_t s = 0; s < shards; ++s) {
      auto o = lo;
      o.shard = s;
      o.shards = shards;
      parts.push_back(std::make_unique<compress::data::Loader>(ds, o));
    }
    for (int64_t k = 0; k < whole.batches_per_epoch(); ++k) {
      auto ref = whole.make_batch(3, k, order);
      std::vector<at::Tensor> xs, ys;
      for (auto& p : parts) {
        auto b = p->make_batch(3, k, order);
        CHECK(b.inputs.size(0) == 12 / shards);
        CHECK(b.global_size == 12);
        xs.push_back(b.inputs);
        ys.push_back(b.labels);
      }
      INFO("shards " << shards << ", batch " << k);
      CHECK(at::equal(at::cat(xs), ref.inputs));
      CHECK(at::equal(at::cat(ys), ref.labels));
    }
  }
}

TEST_CASE("2 ranks and 1 rank with the same global batch reach the same weights after 50 steps", "[distributed][cli]") {
  const TempDir dir("dist_equiv");
  const std::string data = make_set(dir, "equiv.pt", 400, 21);
  const std::string one = dir.file("one.pt"), two = dir.file("two.pt"), init = dir.file("init.pt");
  // resnet: batch norm (frozen: eval-mode statistics, so the per-rank batch
  // does not matter), no dropout; its recipe flips images (drawn per global
  // batch), SGD with Nesterov momentum, weight decay, cosine schedule.
  const std::string common = "train --arch resnet --data " + data + " --test-data " + data +
                             " --epochs 1 --batch-size 8 --lr 0.05 --batch-norm frozen --threads 1 --quiet --json";
  Run a = run_env("", common + " -o " + one);
  INFO(a.out);
  REQUIRE(a.code == 0);
  CHECK(nlohmann::json::parse(a.out)["steps"] == 50);
  Run b = run_env("", common + " --nproc 2 --bucket-mb 0.25 -o " + two);
  INFO(b.out);
  REQUIRE(b.code == 0);
  CHECK(nlohmann::json::parse(b.out)["steps"] == 50);
  std::string worst;
  const double diff = relative_difference(one, two, &worst);
  INFO("relative difference " << diff << "; largest per tensor: " << worst);
  CHECK(diff < 1e-5);
  // The comparison means something: 50 steps moved the weights far more.
  compress::models::build("resnet", 0).module.save(init);  // what both runs started from (seed 0)
  CHECK(relative_difference(init, one) > 1e-2);
}

TEST_CASE("a killed worker stops the other within 30 s, the launcher fails, a resume with 1 rank finishes",
          "[distributed][cli][kill]") {
  const TempDir dir("dist_kill");
  const std::string data = make_set(dir, "kill.pt", 256, 22);
  const std::string ckpt = dir.file("run.ckpt"), whole = dir.file("whole.pt"), resumed = dir.file("resumed.pt");
  const std::vector<std::string> common = {"train", "--arch", "resnet", "--data", data, "--test-data", data,
                                           "--epochs", "2", "--batch-size", "16", "--lr", "0.05",
                                           "--batch-norm", "frozen", "--threads", "1", "--quiet"};
  Run w = run_env("", join(common) + " -o " + whole);
  INFO(w.out);
  REQUIRE(w.code == 0);

  std::vector<std::string> one_rank = common;
  for (const char* a : {"--checkpoint", ckpt.c_str(), "--checkpoint-steps", "3", "-o", resumed.c_str()}) {
    one_rank.push_back(a);
  }
  // A collective timeout far beyond the 30 s asked for: rank 0 must stop
  // because the connection dropped (its message names the dead process),
  // not because a collective timed out (30 s by default: the bound below
  // would race it).
  std::vector<std::string> killed = one_rank;
  for (const char* a : {"--nproc", "2", "--dist-timeout", "300"}) killed.push_back(a);
  const std::string log = dir.file("killed.log");
  const pid_t launcher = cli_test::spawn(killed, log);
  REQUIRE(launcher > 0);
  const auto start = std::chrono::steady_clock::now();
  while (!fs::exists(ckpt) && std::chrono::steady_clock::now() < start + std::chrono::seconds(120)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(fs::exists(ckpt));
  const pid_t victim = worker_of(launcher, 1);
  REQUIRE(victim > 0);
  REQUIRE(::kill(victim, SIGKILL) == 0);
  const auto killed_at = std::chrono::steady_clock::now();
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(launcher, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < killed_at + std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (done == 0) ::kill(launcher, SIGKILL), ::waitpid(launcher, &status, 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  const std::string out = read_file(log);
  INFO(out << "\nlauncher exited " << seconds << " s after the kill");
  REQUIRE(done == launcher);
  CHECK(seconds < 30);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  CHECK_THAT(out, Catch::Contains("worker rank 1 (pid " + std::to_string(victim) + ") was killed by signal 9"));
  CHECK_THAT(out, Catch::Contains("compress train: error: rank 0: ") && Catch::Contains("lost rank 1 (process " +
                                                                                        std::to_string(victim)));
  REQUIRE_FALSE(fs::exists(resumed));

  // Resumed by one process: the checkpoint's position is global.
  Run r = run_env("", join(one_rank) + " --resume");
  INFO(r.out);
  REQUIRE(r.code == 0);
  std::string worst;
  const double diff = relative_difference(whole, resumed, &worst);
  INFO("relative difference to the uninterrupted 1-rank run " << diff << "; largest per tensor: " << worst);
  CHECK(diff < 1e-5);
}

TEST_CASE("bad torchrun variables and an unreachable master: one line, exit code 2", "[distributed][cli]") {
  const TempDir dir("dist_bad");
  const std::string data = make_set(dir, "bad.pt", 32, 23);
  const std::string args = "train --arch cnn --data " + data + " --epochs 1 --batch-size 16 --quiet -o " +
                           dir.file("out.pt");
  const std::string port = std::to_string(free_port());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"WORLD_SIZE=2 RANK=2", "RANK=2 is not below WORLD_SIZE=2 (ranks are 0..1)"},
      {"WORLD_SIZE=two RANK=0", "WORLD_SIZE=two is not a whole number"},
      {"WORLD_SIZE=2 RANK=-1", "RANK=-1 is outside 0..1048576"},
      {"WORLD_SIZE=2 RANK=1x", "RANK=1x is not a whole number"},
      {"RANK=0", "RANK is set but WORLD_SIZE is not"},
      {"WORLD_SIZE=2 RANK=1 MASTER_PORT=" + port, "WORLD_SIZE=2 needs MASTER_ADDR"},
      {"WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=99999", "MASTER_PORT=99999 is outside 1..65535"},
      {"WORLD_SIZE=2 RANK=0 LOCAL_RANK=5 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port, "LOCAL_RANK=5 is outside 0..1"},
  };
  for (const auto& [vars, expect] : cases) {
    Run r = run_env(vars, args);
    INFO(vars << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(lines(r.out) == 1);
    CHECK_THAT(r.out, Catch::StartsWith("compress train: error: " + expect));
  }
  // Nobody listens on the port: a rank other than 0 gives up after the timeout.
  auto t0 = std::chrono::steady_clock::now();
  Run r = run_env("WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port, args + " --rendezvous-timeout 2");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.out << "\n" << s << " s");
  CHECK(r.code == 2);
  CHECK(lines(r.out) == 1);
  CHECK_THAT(r.out, Catch::StartsWith("compress train: error: rank 1 of 2: cannot reach the master at 127.0.0.1:" +
                                      port + " within 2 s"));
  CHECK(s < 20);
  // Rank 0 alone: the others never join.
  Run z = run_env("WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port, args + " --rendezvous-timeout 2");
  INFO(z.out);
  CHECK(z.code == 2);
  CHECK(lines(z.out) == 1);
  CHECK_THAT(z.out, Catch::StartsWith("compress train: error: rank 0 of 2: rendezvous at 127.0.0.1:" + port +
                                      " failed: not every rank joined within 2 s"));
  // A global batch the ranks cannot share evenly.
  Run odd = run_env("", "train --arch cnn --data " + data + " --epochs 1 --batch-size 15 --quiet --nproc 2 -o " +
                            dir.file("odd.pt"));
  INFO(odd.out);
  CHECK(odd.code == 2);
  CHECK_THAT(odd.out, Catch::Contains("batch size 15 (the global batch) is not divisible by the 2 processes"));
  CHECK_FALSE(fs::exists(dir.file("odd.pt")));
  // --nproc beyond the cores is a warning, not a failure.
  const int cores = int(std::thread::hardware_concurrency());
  if (cores <= 4) {
    Run many = run_env("", "train --arch cnn --data " + data + " --epochs 1 --quiet --batch-size " +
                               std::to_string(4 * (cores + 1)) + " --nproc " + std::to_string(cores + 1) + " -o " +
                               dir.file("many.pt"));
    INFO(many.out);
    CHECK(many.code == 0);
    CHECK_THAT(many.out, Catch::Contains("warning: --nproc " + std::to_string(cores + 1) + " is more than the " +
                                         std::to_string(cores) + " cores here"));
  }
}

TEST_CASE("compress prune --finetune-epochs --nproc 2: rank 0 alone writes the model and the report", "[distributed][cli][prune]") {
  const TempDir dir("dist_prune");
  const std::string data = make_set(dir, "prune.pt", 128, 24);
  const std::string model = dir.file("cnn.pt"), pruned = dir.file("half.pt"), report = dir.file("report.json");
  compress::models::build("cnn", 0).module.save(model);
  Run p = run_env("", "prune " + model + " -o " + pruned + " --input-shape 1,1,28,28 --ratio 0.5 --data " + data +
                          " --finetune-epochs 1 --lr 0.02 --report " + report + " --nproc 2");
  INFO(p.out);
  REQUIRE(p.code == 0);
  // Once each: the other rank is quiet.
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = p.out.find(what); at != std::string::npos; at = p.out.find(what, at + 1)) ++n;
    return n;
  };
  CHECK(count("wrote " + pruned) == 1);
  CHECK(count("epoch 1/1: loss") == 1);
  CHECK(count("top-1 ") == 1);
  std::ifstream f(report);
  auto j = nlohmann::json::parse(f);
  CHECK(j["finetune_epochs"] == 1);
  CHECK(j["result"]["macs_after"].get<double>() < j["result"]["macs_before"].get<double>());
  CHECK(fs::exists(pruned));
  // --nproc parallelises the fine-tuning only.
  Run q = run_env("", "prune " + model + " -o " + dir.file("q.pt") + " --input-shape 1,1,28,28 --ratio 0.5 --nproc 2");
  CHECK(q.code == 2);
  CHECK_THAT(q.out, Catch::Contains("--nproc parallelises fine-tuning: it needs --finetune-epochs"));
}

TEST_CASE("resuming with --nproc 2 from another model's checkpoint: one line from rank 0, exit code 2", "[distributed][cli]") {
  const TempDir dir("dist_foreign");
  const std::string data = make_set(dir, "foreign.pt", 64, 25), ckpt = dir.file("cnn.ckpt");
  const std::string tail = " --data " + data + " --test-data " + data + " --epochs 1 --batch-size 16 --quiet --checkpoint " +
                           ckpt + " -o " + dir.file("out.pt");
  REQUIRE(run_env("", "train --arch cnn" + tail).code == 0);
  Run r = run_env("", "train --arch resnet" + tail + " --resume --nproc 2");
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(lines(r.out) == 1);
  CHECK_THAT(r.out, Catch::StartsWith("compress train: error: " + ckpt + ": checkpoint belongs to another run"));
}

TEST_CASE("synchronised batch norm: 2 ranks train as 1 process with the whole batch, running statistics included",
          "[distributed][cli][syncbn]") {
  const TempDir dir("dist_syncbn");
  const std::string data = make_set(dir, "syncbn.pt", 160, 26);
  const std::string one = dir.file("one.pt"), sync = dir.file("sync.pt"), local = dir.file("local.pt");
  // resnet in train-mode batch norm: the batch statistics of each step enter
  // the weights, the running statistics are buffers of the saved model. 10
  // steps: the statistics agree with one process's to float rounding, and a
  // ReLU whose input is that close to zero may let a gradient through in one
  // run and not the other; over many steps (and at a high learning rate)
  // such flips grow into differences of either kind of run, one process with
  // 1 or 2 threads included. The frozen-BN test above runs 50.
  const std::string common = "train --arch resnet --data " + data + " --test-data " + data +
                             " --epochs 1 --batch-size 16 --lr 0.01 --threads 1 --quiet --json";
  Run a = run_env("", common + " --batch-norm local -o " + one);
  INFO(a.out);
  REQUIRE(a.code == 0);
  Run b = run_env("", common + " --batch-norm sync --nproc 2 -o " + sync);
  INFO(b.out);
  REQUIRE(b.code == 0);
  CHECK(nlohmann::json::parse(b.out)["steps"] == 10);
  std::string worst;
  const double diff = relative_difference(one, sync, &worst);
  INFO("sync vs 1 process: relative difference " << diff << "; largest per tensor: " << worst);
  CHECK(diff < 1e-5);
  // Per-rank statistics (DDP's default) train a different model: what sync buys.
  Run c = run_env("", common + " --batch-norm local --nproc 2 -o " + local);
  REQUIRE(c.code == 0);
  const double local_diff = relative_difference(one, local);
  INFO("local (per-rank statistics) vs 1 process: " << local_diff);
  CHECK(local_diff > 100 * diff);
  CHECK(local_diff > 1e-4);
  // The saved model is plain TorchScript: no training op inside.
  CHECK(torch::jit::load(sync).dump_to_str(true, false, false).find("sync_batch_norm") == std::string::npos);
}

TEST_CASE("sync batch norm on a model without batch norm: one line, exit code 2", "[distributed][cli][syncbn]") {
  const TempDir dir("dist_syncbn_none");
  const std::string data = make_set(dir, "none.pt", 64, 27), model = dir.file("mlp.pt");
  compress::models::build("vit", 0).module.save(model);  // layer norms only
  Run r = run_env("", "train --init " + model + " --data " + data + " --test-data " + data +
                          " --epochs 1 --batch-size 16 --batch-norm sync --nproc 2 --quiet -o " + dir.file("o.pt"));
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("batch norm mode sync: the model has no batch norm"));
  CHECK_FALSE(fs::exists(dir.file("o.pt")));
}

TEST_CASE("qat and distill and pdd train data-parallel: 2 ranks reach what 1 process reaches", "[distributed][cli]") {
  const TempDir dir("dist_commands");
  const std::string data = make_set(dir, "cmds.pt", 200, 28);
  const std::string teacher = dir.file("teacher.pt");
  compress::models::build("cnn", 3, 10, 0.5).module.save(teacher);

  // QAT with STE: the activation ranges come from each step's batch; with 2
  // ranks they are reduced over the global batch.
  const std::string qat = "qat " + teacher + " --data " + data + " --epochs 1 --batch-size 8 --method ste --calib-batches 2 --quiet";
  one_process_and_two_ranks(dir, qat, "q");
  CHECK(relative_difference(dir.file("q1.pt"), dir.file("q2.pt")) < 1e-5);
  // The comparison means something: another shuffle trains another model.
  REQUIRE(run_env("", qat + " --threads 1 --seed 5 -o " + dir.file("q3.pt")).code == 0);
  CHECK(relative_difference(dir.file("q1.pt"), dir.file("q3.pt")) > 1e-3);

  // Distillation (KD) and PDD of a quarter-width resnet student (no dropout,
  // whose masks differ between ranks by design), batch norms synchronised;
  // few steps at a low rate (see the sync batch norm test).
  const std::string student = " --arch resnet --width 0.25 --data " + data + " --test-data " + data +
                              " --batch-size 20 --lr 0.01 --batch-norm sync --quiet";
  const std::string distill = "distill --teacher " + teacher + student + " --epochs 1";
  one_process_and_two_ranks(dir, distill, "d");
  CHECK(relative_difference(dir.file("d1.pt"), dir.file("d2.pt")) < 1e-5);
  REQUIRE(run_env("", distill + " --threads 1 --seed 5 -o " + dir.file("d3.pt")).code == 0);
  CHECK(relative_difference(dir.file("d1.pt"), dir.file("d3.pt")) > 1e-3);

  // PDD: the same channels survive, and the students agree.
  const std::string pdd = "pdd --teacher " + teacher + student + " --epochs 1 --target-macs 0.6 --finetune-epochs 1 --json";
  auto [p1, p2] = one_process_and_two_ranks(dir, pdd, "p");
  CHECK(nlohmann::json::parse(p1.out)["groups"] == nlohmann::json::parse(p2.out)["groups"]);
  CHECK(relative_difference(dir.file("p1.pt"), dir.file("p2.pt")) < 1e-5);
}

TEST_CASE("sparsify fine-tunes data-parallel: 2 ranks keep the masks and weights of 1 process", "[distributed][cli]") {
  const TempDir dir("dist_sparsify");
  const std::string data = make_set(dir, "sparse.pt", 160, 29), model = dir.file("resnet.pt");
  compress::models::build("resnet", 4, 10, 0.25).module.save(model);
  const std::string common = "sparsify " + model + " --sparsity 0.6 --data " + data +
                             " --finetune-epochs 1 --batch-size 16 --lr 0.01 --batch-norm frozen --quiet";
  one_process_and_two_ranks(dir, common, "s");
  CHECK(relative_difference(dir.file("s1.pt"), dir.file("s2.pt")) < 1e-5);
  // The same weights are zero in both (AGP's masks follow the weights).
  auto zeros = [](const std::string& path) {
    int64_t n = 0;
    for (const auto& p : torch::jit::load(path).named_parameters()) n += p.value.eq(0).sum().item<int64_t>();
    return n;
  };
  CHECK(zeros(dir.file("s1.pt")) == zeros(dir.file("s2.pt")));
  CHECK(zeros(dir.file("s1.pt")) > 0);
  Run c = run_env("", "sparsify " + model + " --sparsity 0.6 --nproc 2 -o " + dir.file("c.pt"));
  CHECK(c.code == 2);
  CHECK_THAT(c.out, Catch::Contains("--nproc parallelises fine-tuning: it needs --finetune-epochs"));
}
