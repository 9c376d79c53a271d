// Kill-safe files: atomic writes clean up after killed writers, and a
// checkpoint is checked field by field (and against the run's settings)
// before anything of it is restored.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <torch/csrc/jit/serialization/pickle.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>

#include "compress/archive_check.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/train/trainer.h"
#include "temp_dir.h"
#include "tiny.h"
#include "../fuzz/checkpoint_run.h"
#include "test_paths.h"

using namespace compress::train;
namespace fs = std::filesystem;
using compress::testing::TempDir;

namespace {

// A pid that certainly belongs to no process: a child that has exited and been reaped.
pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

void touch(const std::string& path) { std::ofstream(path) << "partial"; }

std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(f.path().filename());
  }
  return out;
}

}  // namespace

TEST_CASE("an atomic write removes the temporaries of dead writers, and only those", "[io][checkpoint]") {
  const TempDir dir("atomic");
  const std::string out = dir.file("out.txt");
  const std::string dead = dir.file(".out.txt.tmp." + std::to_string(dead_pid()) + ".0badf00d");
  const std::string live = dir.file(".out.txt.tmp." + std::to_string(::getpid()) + ".1badf00d");
  const std::string old_live = dir.file(".out.txt.tmp." + std::to_string(::getppid()) + ".2badf00d");
  const std::string other = dir.file(".other.txt.tmp." + std::to_string(dead_pid()) + ".3badf00d");
  const std::string lookalike = dir.file(".out.txt.tmp.notapid");
  for (const auto& f : {dead, live, old_live, other, lookalike}) touch(f);
  fs::last_write_time(old_live, fs::file_time_type::clock::now() - std::chrono::hours(48));

  compress::write_text_file(out, "hello\n");
  std::ifstream in(out);
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "hello\n");
  CHECK_FALSE(fs::exists(dead));      // its process is gone
  CHECK_FALSE(fs::exists(old_live));  // a day old: removed even though the pid exists
  CHECK(fs::exists(live));            // a fresh file of a living process may be a write in progress
  CHECK(fs::exists(other));           // another output's temporaries are not this write's business
  CHECK(fs::exists(lookalike));       // not one of our names
  CHECK(temporaries(dir.path()).size() == 3);  // live, other, lookalike: the write left none of its own
}

namespace {

TrainConfig ckpt_config() {
  TrainConfig c = tiny::train_config(5);
  c.fingerprint = "tiny";
  return c;
}

// 200 samples: 6 batches of 32 per epoch; stopped after step 8 = epoch 1, batch 2.
const compress::data::TensorDataset& ckpt_data() {
  static const auto data = tiny::blobs(200, 4);
  return data;
}

c10::impl::GenericDict write_checkpoint(const std::string& path) {
  auto cfg = ckpt_config();
  cfg.checkpoint_path = path;
  cfg.stop_after_steps = 8;
  Trainer(tiny::make_model(1), cfg).fit(ckpt_data());
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(bytes).toGenericDict();
}

void save_raw(const c10::IValue& v, const std::string& path) {
  std::vector<char> bytes = torch::jit::pickle_save(v);
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Resumes from `path` with `cfg` and returns the refusal's message ("" when accepted).
std::string resume_refusal(const std::string& path, TrainConfig cfg, const torch::jit::Module& m) {
  cfg.checkpoint_path = path;
  cfg.resume = true;
  try {
    Trainer(m, cfg).fit(ckpt_data());
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    return e.what();
  }
  return "";
}

c10::impl::GenericDict sub(c10::impl::GenericDict& d, const char* key) { return d.at(key).toGenericDict(); }

}  // namespace

TEST_CASE("a checkpoint is refused field by field, before anything is restored", "[trainer][checkpoint]") {
  const TempDir dir("ckpt");
  const std::string good = dir.file("good.ckpt"), bad = dir.file("bad.ckpt");
  const auto base = write_checkpoint(good);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  using Edit = std::function<void(c10::impl::GenericDict&)>;
  const std::vector<std::pair<Edit, std::string>> cases = {
      {[](auto& d) { REQUIRE(d.erase("epoch") == 1); }, "field 'epoch' is missing"},
      {[](auto& d) { d.insert_or_assign("epoch", std::string("two")); }, "field 'epoch' should be an integer, is String"},
      {[](auto& d) { d.insert_or_assign("epoch", int64_t(-1)); }, "field 'epoch' is -1, outside 0..4"},
      {[](auto& d) { d.insert_or_assign("epoch", int64_t(5)); }, "field 'epoch' is 5, outside 0..4"},
      {[](auto& d) { d.insert_or_assign("next_batch", int64_t(6)); }, "field 'next_batch' is 6, outside 0..5"},
      {[](auto& d) { d.insert_or_assign("next_batch", int64_t(-3)); }, "field 'next_batch' is -3, outside 0..5"},
      {[](auto& d) { d.insert_or_assign("step", int64_t(9)); }, "field 'step' is 9, but epoch 1 batch 2 is step 8"},
      {[](auto& d) { d.insert_or_assign("step", int64_t(-1)); }, "field 'step' is -1, outside 0..24"},
      {[](auto& d) { d.insert_or_assign("optimizer_steps", int64_t(7)); }, "field 'optimizer_steps' is 7, outside 8..8"},
      {[](auto& d) { d.insert_or_assign("seen", int64_t(65)); }, "field 'seen' is 65, outside 0..64"},
      {[](auto& d) { d.insert_or_assign("correct", int64_t(65)); }, "field 'correct' is 65, outside 0..64"},
      {[nan](auto& d) { d.insert_or_assign("loss_sum", nan); }, "field 'loss_sum' is nan, not a finite"},
      {[](auto& d) { d.insert_or_assign("loss_sum", int64_t(1)); }, "field 'loss_sum' should be a number, is Int"},
      {[](auto& d) { d.insert_or_assign("fingerprint", int64_t(1)); }, "field 'fingerprint' should be a string, is Int"},
      {[](auto& d) { d.insert_or_assign("format", std::string("compress-checkpoint-1")); },
       "checkpoint format 'compress-checkpoint-1' is not this version's"},
      {[](auto& d) { REQUIRE(d.erase("settings") == 1); }, "field 'settings' is missing"},
      {[](auto& d) { d.insert_or_assign("parameters", at::zeros({1})); },
       "field 'parameters' should be a dictionary, is Tensor"},
      {[](auto& d) { sub(d, "parameters").insert_or_assign("w1", at::zeros({8, 16})); },
       "field 'parameters.w1' has shape [8, 16], the model's is [16, 8]"},
      {[](auto& d) { sub(d, "parameters").insert_or_assign("w1", at::zeros({16, 8}, at::kDouble)); },
       "field 'parameters.w1' has dtype Double, the model's is Float"},
      {[](auto& d) { sub(d, "parameters").insert_or_assign("w1", int64_t(3)); },
       "field 'parameters.w1' should be a tensor, is Int"},
      {[](auto& d) { REQUIRE(sub(d, "parameters").erase("w2") == 1); }, "field 'parameters.w2' is missing"},
      {[nan](auto& d) {
         at::Tensor t = sub(d, "parameters").at("w1").toTensor().clone();
         t[3][4] = nan;
         sub(d, "parameters").insert_or_assign("w1", t);
       },
       "field 'parameters.w1' holds NaN or infinite values"},
      {[](auto& d) {
         at::Tensor t = sub(d, "optimizer").at("w2.buf1").toTensor().clone();
         t[0][0] = -std::numeric_limits<float>::infinity();
         sub(d, "optimizer").insert_or_assign("w2.buf1", t);
       },
       "field 'optimizer.w2.buf1' holds NaN or infinite values"},
      {[](auto& d) {
         // The model's shape on a storage one element short, as a crafted pickle makes it.
         at::Tensor t = at::zeros({127});
         t.unsafeGetTensorImpl()->set_sizes_contiguous({16, 8});
         sub(d, "parameters").insert_or_assign("w1", t);
       },
       "field 'parameters.w1' of shape [16, 8], strides [8, 1] and offset 0 reaches past its storage of 508 bytes"},
      {[](auto& d) { sub(d, "parameters").insert("w3", at::zeros({2})); }, "field 'parameters.w3' is not in the model"},
      {[](auto& d) { sub(d, "buffers").insert_or_assign("running_mean", at::zeros({15})); },
       "field 'buffers.running_mean' has shape [15], the model's is [16]"},
      {[](auto& d) { sub(d, "optimizer").insert_or_assign("w2.buf1", at::zeros({16, 3})); },
       "field 'optimizer.w2.buf1' has shape [16, 3], the model's is [3, 16]"},
      {[](auto& d) { sub(d, "optimizer").insert("nosuch.buf1", at::zeros({3})); },
       "field 'optimizer.nosuch.buf1' is not the state of a trained parameter"},
      {[](auto& d) { sub(d, "settings").insert_or_assign("seed", std::string("6")); },
       "other settings: seed (checkpoint 6, now 5)"},
  };
  auto model = tiny::make_model(1);
  const at::Tensor w1 = model.attr("w1").toTensor().clone();
  for (const auto& [edit, expect] : cases) {
    auto d = base.copy();
    // Nested dictionaries are shared by copy(): give the edit its own.
    for (const char* k : {"parameters", "buffers", "optimizer", "settings"}) d.insert_or_assign(k, sub(d, k).copy());
    edit(d);
    save_raw(d, bad);
    const std::string msg = resume_refusal(bad, ckpt_config(), model);
    INFO(expect);
    CHECK_THAT(msg, Catch::Contains(bad + ": ") && Catch::Contains(expect));
    CHECK(msg.find('\n') == std::string::npos);
  }
  CHECK(at::equal(model.attr("w1").toTensor(), w1));  // nothing of a refused checkpoint was restored

  save_raw(c10::IValue(int64_t(3)), bad);
  CHECK_THAT(resume_refusal(bad, ckpt_config(), model), Catch::Contains("not a compress checkpoint"));
  std::ofstream(bad, std::ios::binary) << "garbage";
  CHECK_THAT(resume_refusal(bad, ckpt_config(), model), Catch::Contains("not a readable checkpoint"));
  // The unedited checkpoint is accepted.
  CHECK(resume_refusal(good, ckpt_config(), tiny::make_model(1)).empty());
}

TEST_CASE("resuming with other training settings is refused, naming each difference", "[trainer][checkpoint]") {
  const TempDir dir("ckpt");
  const std::string path = dir.file("run.ckpt");
  write_checkpoint(path);
  using Change = std::function<void(TrainConfig&)>;
  const std::vector<std::pair<Change, std::string>> cases = {
      {[](auto& c) { c.optimizer.lr = 0.1; }, "learning rate (checkpoint 0.2, now 0.1)"},
      {[](auto& c) { c.schedule.kind = "step"; }, "schedule (checkpoint cosine, now step)"},
      {[](auto& c) { c.schedule.warmup_steps = 4; }, "warm-up steps (checkpoint 3, now 4)"},
      {[](auto& c) { c.schedule.min_lr = 0.01; }, "schedule minimum learning rate (checkpoint 0, now 0.01)"},
      {[](auto& c) { c.optimizer.momentum = 0.8; }, "momentum (checkpoint 0.9, now 0.8)"},
      {[](auto& c) { c.optimizer.nesterov = false; }, "nesterov (checkpoint true, now false)"},
      {[](auto& c) { c.optimizer.weight_decay = 0; }, "weight decay (checkpoint 0.001, now 0)"},
      {[](auto& c) { c.label_smoothing = 0.1; }, "label smoothing (checkpoint 0.05, now 0.1)"},
      {[](auto& c) { c.grad_clip = 0; }, "gradient clipping (checkpoint 5, now 0)"},
      {[](auto& c) { c.augment.horizontal_flip = true; }, "horizontal flip (checkpoint false, now true)"},
      {[](auto& c) { c.augment.crop_padding = 2; }, "crop padding (checkpoint 0, now 2)"},
      {[](auto& c) { c.mean = at::full({8}, 0.5); c.std = at::ones({8}); }, "normalisation mean (checkpoint none, now 0.5,0.5"},
      {[](auto& c) { c.batch_size = 16; }, "batch size (checkpoint 32, now 16)"},
      {[](auto& c) { c.epochs = 5; }, "epochs (checkpoint 4, now 5)"},
      {[](auto& c) { c.seed = 6; }, "seed (checkpoint 5, now 6)"},
      {[](auto& c) { c.optimizer.kind = "adam"; c.optimizer.nesterov = false; }, "optimizer (checkpoint sgd, now adam)"},
      {[](auto& c) { c.optimizer.kind = "adam"; c.optimizer.nesterov = false; }, "momentum (checkpoint 0.9, now unset)"},
      {[](auto& c) { c.optimizer.groups = {ParamGroup{"head", {"w2"}, false, 0.05, std::nullopt}}; },
       "parameter groups (checkpoint none, now head [w2] lr=0.05)"},
  };
  for (const auto& [change, expect] : cases) {
    auto cfg = ckpt_config();
    change(cfg);
    INFO(expect);
    CHECK_THAT(resume_refusal(path, cfg, tiny::make_model(1)),
               Catch::Contains(path + ": checkpoint was written with other settings: ") && Catch::Contains(expect));
  }
  CHECK(resume_refusal(path, ckpt_config(), tiny::make_model(1)).empty());
}

// Hidden (not run by ctest): writes the checkpoint harness's seeds.
//   build/tests/train/test_train "[.fuzz_seeds]"
TEST_CASE("a pickle length past the end of its record is refused before unpickling", "[trainer][checkpoint]") {
  // Each length-prefixed opcode, its length one byte more than what follows
  // with the STOP after it (1-byte, 4-byte and 8-byte length fields), then
  // a string of 4 GB.
  const std::vector<std::string> bad = {
      std::string("U\x04" "ab.", 5),                      // SHORT_BINSTRING
      std::string("C\x04" "ab.", 5),                      // SHORT_BINBYTES
      std::string("\x8c\x04" "ab.", 5),                  // SHORT_BINUNICODE
      std::string("\x8a\x04" "ab.", 5),                  // LONG1
      std::string("X\x05\0\0\0abc.", 9),            // BINUNICODE
      std::string("B\x05\0\0\0abc.", 9),            // BINBYTES
      std::string("T\x05\0\0\0abc.", 9),            // BINSTRING
      std::string("T\xff\xff\xff\xff" "abc.", 9),      // BINSTRING, negative
      std::string("\x8b\x05\0\0\0abc.", 9),        // LONG4
      std::string("\x8d\x05\0\0\0\0\0\0\0abc.", 13),  // BINUNICODE8
      std::string("\x8e\x05\0\0\0\0\0\0\0abc.", 13),  // BINBYTES8
      std::string("\x96\x05\0\0\0\0\0\0\0abc.", 13),  // BYTEARRAY8
      std::string("X\x03\0\0\xfc" "abc.", 9),          // 4 GB
  };
  for (const std::string& p : bad) {
    INFO(p);
    CHECK_THROWS_WITH(compress::check_pickle(p.data(), p.size(), "x.pkl"),
                      Catch::StartsWith("x.pkl: a length field says ") && Catch::Contains("bytes, only"));
  }
  CHECK_THROWS_WITH(compress::check_pickle("\x80\x02\xff.", 4, "x"), Catch::Contains("unknown pickle opcode 0xff"));
  CHECK_THROWS_WITH(compress::check_pickle("\x80\x02N", 3, "x"), Catch::Contains("ends without its STOP"));
  CHECK_THROWS_WITH(compress::check_pickle("cmod\nname", 9, "x"), Catch::Contains("text argument runs past"));
  CHECK_THROWS_WITH(compress::check_pickle("J\x01\x02", 3, "x"), Catch::Contains("an argument runs past"));
  // Memo ids: LibTorch's unpickler resizes its memo vector to the id.
  CHECK_THROWS_WITH(compress::check_pickle("Nr\xff\xff\xff\x7f.", 7, "x"),
                    Catch::Contains("a memo index 2147483647 larger than the record"));
  CHECK_THROWS_WITH(compress::check_pickle("Nq\x00h\x01.", 6, "x"), Catch::Contains("a memo read of index 1, never stored"));
  CHECK_NOTHROW(compress::check_pickle("Nq\x00h\x00.", 6, "x"));
  // What LibTorch writes passes, and so do exact lengths.
  const TempDir dir("ckpt");
  const std::vector<char> real = torch::jit::pickle(c10::IValue(write_checkpoint(dir.file("c"))));
  CHECK_NOTHROW(compress::check_pickle(real.data(), real.size(), "x"));
  CHECK_NOTHROW(compress::check_pickle("X\x03\0\0\0" "abc.", 9, "x"));

  // The fuzz finding: a checkpoint whose BINUNICODE length says 4 GB made the
  // unpickler reserve 4 GB; now it is one line naming the file.
  const std::string finding =
      (fs::path(COMPRESS_SOURCE_DIR) / "tests/fuzz/corpus/checkpoint/regression_unpickler_string_length").string();
  std::string msg;
  try {
    fuzz_checkpoint::run(finding, true, -1);
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    msg = e.what();
  }
  CHECK_THAT(msg, Catch::StartsWith(finding + ": not a readable checkpoint (record data.pkl: a length field says "
                                              "4227858435 bytes"));
  CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("write the seeds of the checkpoint fuzz harness", "[.fuzz_seeds]") {
  const fs::path dir = fs::path(COMPRESS_SOURCE_DIR) / "tests/fuzz/corpus/checkpoint";
  fs::create_directories(dir);
  // Mid-epoch, at an epoch boundary, and a finished run.
  for (int64_t stop : {2, 4, 8}) {
    const std::string p = (dir / ("stopped_after_" + std::to_string(stop))).string();
    fs::remove(p);
    fuzz_checkpoint::run(p, false, stop);
    REQUIRE(fs::exists(p));
  }
  std::ofstream(dir / "not_a_pickle", std::ios::binary) << "PK\x03\x04 not a checkpoint";
}
