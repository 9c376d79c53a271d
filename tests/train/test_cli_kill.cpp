// compress train killed with SIGKILL mid-epoch and resumed ends with the
// uninterrupted run's weights, bit for bit; a bad or foreign checkpoint is
// refused through the CLI with one line and exit code 2.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/csrc/jit/serialization/pickle.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "cli_run.h"
#include "compress/train/trainer.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using cli_test::make_set;
using cli_test::run;
using cli_test::Run;
using compress::testing::TempDir;

namespace {

c10::impl::GenericDict read_checkpoint(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(bytes).toGenericDict();
}

void write_checkpoint(const c10::impl::GenericDict& d, const std::string& path) {
  std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(d));
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += " " + a;
  return s;
}

}  // namespace

TEST_CASE("compress train killed mid-epoch resumes to the uninterrupted run's weights", "[cli][train][kill]") {
  const TempDir dir("cli_kill");
  const std::string data = make_set(dir, "kill_train.pt", 256, 11), test = make_set(dir, "kill_test.pt", 32, 12);
  const std::string ckpt = dir.file("run.ckpt"), whole = dir.file("whole.pt"), resumed = dir.file("resumed.pt");
  // 16 batches per epoch, 2 epochs; the cnn has batch norm and dropout.
  const std::vector<std::string> common = {"train", "--arch", "cnn", "--data", data, "--test-data", test,
                                           "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--quiet"};

  Run w = run(join(common) + " -o " + whole);
  INFO(w.out);
  REQUIRE(w.code == 0);

  std::vector<std::string> killed = common;
  for (const char* a : {"--checkpoint", ckpt.c_str(), "--checkpoint-steps", "3", "-o", resumed.c_str()}) {
    killed.push_back(a);
  }
  const pid_t pid = cli_test::spawn(killed, dir.file("killed.log"));
  REQUIRE(pid > 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(ckpt) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(fs::exists(ckpt));
  REQUIRE(WIFSIGNALED(status));  // killed, not finished
  REQUIRE(WTERMSIG(status) == SIGKILL);
  REQUIRE_FALSE(fs::exists(resumed));
  // The checkpoint left behind is a whole one, taken mid-epoch.
  auto d = read_checkpoint(ckpt);
  const int64_t step = d.at("step").toInt();
  INFO("killed after step " << step);
  CHECK(d.at("next_batch").toInt() > 0);
  CHECK(step < 32);
  // What a kill during a checkpoint write leaves: the resumed run removes it.
  const std::string torn = dir.file(".run.ckpt.tmp." + std::to_string(pid) + ".deadbeef");
  std::ofstream(torn) << "torn";

  Run r = run(join(killed) + " --resume");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK_FALSE(fs::exists(torn));

  auto a = torch::jit::load(whole), b = torch::jit::load(resumed);
  auto pa = compress::train::named_parameters(a), pb = compress::train::named_parameters(b);
  auto ba = compress::train::named_buffers(a), bb = compress::train::named_buffers(b);
  pa.insert(pa.end(), ba.begin(), ba.end());
  pb.insert(pb.end(), bb.begin(), bb.end());
  REQUIRE(pa.size() == pb.size());
  REQUIRE(pa.size() > 4);
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].name);
    REQUIRE(pa[i].name == pb[i].name);
    CHECK(at::equal(pa[i].value, pb[i].value));
  }
}

TEST_CASE("compress train --resume refuses a bad or foreign checkpoint: one line, exit code 2", "[cli][train]") {
  const TempDir dir("cli_resume");
  const std::string data = make_set(dir, "resume_train.pt", 64, 13), ckpt = dir.file("run.ckpt");
  const std::string args = "train --arch cnn --data " + data + " --test-data " + data +
                           " --batch-size 16 --quiet --checkpoint " + ckpt + " -o " + dir.file("out.pt");
  // Stopped after the first epoch's checkpoint, as a killed run would be.
  REQUIRE(run(args + " --lr 0.05 --epochs 1").code == 0);
  auto d = read_checkpoint(ckpt);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --lr 0.03 --epochs 1 --resume", "learning rate (checkpoint 0.05, now 0.03)"},
      {" --lr 0.05 --epochs 3 --resume", "epochs (checkpoint 1, now 3)"},
      {" --lr 0.05 --epochs 1 --momentum 0.5 --resume", "momentum (checkpoint 0.9, now 0.5)"},
  };
  for (const auto& [extra, expect] : cases) {
    Run r = run(args + extra);
    INFO(extra << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_THAT(r.out, Catch::StartsWith("compress train: error: " + ckpt + ": checkpoint was written with other "
                                        "settings") && Catch::Contains(expect));
  }
  d.insert_or_assign("epoch", int64_t(-2));
  write_checkpoint(d, ckpt);
  Run r = run(args + " --lr 0.05 --epochs 1 --resume");
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK_THAT(r.out, Catch::StartsWith("compress train: error: " + ckpt +
                                      ": bad checkpoint: field 'epoch' is -2, outside 0..1"));
}
