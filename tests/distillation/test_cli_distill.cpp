// compress distill end to end on a synthetic dataset file, and its bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "compress/models/zoo.h"
#include "train/cli_run.h"

namespace fs = std::filesystem;
using compress::testing::TempDir;
using cli_test::make_set;
using cli_test::run;
using cli_test::Run;

TEST_CASE("compress distill trains a half-width student under a trained teacher", "[cli][distill]") {
  const TempDir dir("cli_distill");
  const std::string train = make_set(dir, "train.pt", 256, 1), test = make_set(dir, "test.pt", 128, 2);
  const std::string teacher = dir.file("teacher.pt"), student = dir.file("student.pt");
  REQUIRE(run("train --arch cnn --width 0.25 --data " + train + " --epochs 2 --batch-size 32 --lr 0.05 --threads 1 --quiet -o " +
              teacher).code == 0);
  Run d = run("distill --teacher " + teacher + " --arch cnn --width 0.125 --data " + train + " --test-data " + test +
              " --epochs 2 --batch-size 32 --lr 0.05 --threads 1 --loss kd,at --feature features.10:relu=features.10:relu"
              " --temperature 3 --alpha 0.8 --quiet --json -o " + student);
  INFO(d.out);
  REQUIRE(d.code == 0);
  auto j = nlohmann::json::parse(d.out);
  CHECK(j["steps"] == 16);
  CHECK(j["teacher_cached"] == true);
  CHECK(j["last_epoch_loss_terms"]["attention"].get<double>() > 0);
  CHECK(j["test"]["top1"].get<double>() > 0.5);  // chance is 0.25
  REQUIRE(fs::exists(student));
  Run e = run("eval " + student + " --data " + test + " --json");
  INFO(e.out);
  REQUIRE(e.code == 0);
  CHECK(nlohmann::json::parse(e.out)["top1"].get<double>() == Approx(j["test"]["top1"].get<double>()));

  // The student may also be the teacher with channels pruned away.
  const std::string pruned = dir.file("pruned.pt");
  Run p = run("distill --teacher " + teacher + " --prune-teacher 0.5 --data " + train + " --test-data " + test +
              " --epochs 1 --batch-size 32 --lr 0.02 --threads 1 --quiet --json -o " + pruned);
  INFO(p.out);
  REQUIRE(p.code == 0);
  CHECK(nlohmann::json::parse(p.out)["parameters"].get<int64_t>() <
        compress::models::count_parameters(torch::jit::load(teacher)));
}

TEST_CASE("compress distill refuses bad input with one line and exit code 2, writing nothing", "[cli][distill]") {
  const TempDir dir("cli_distill_bad");
  const std::string data = make_set(dir, "train.pt", 64, 3);
  const std::string teacher = dir.file("teacher.pt"), five = dir.file("five_classes.pt"), out = dir.file("out.pt");
  compress::models::build("cnn", 1, 10, 0.25).module.save(teacher);
  compress::models::build("cnn", 2, 5, 0.25).module.save(five);
  const std::string base = "distill --teacher " + teacher + " --data " + data + " --epochs 1 --threads 1 --quiet -o " + out;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--student " + five, "outputs differ in shape"},
      {"--arch cnn --loss fitnet --feature features.10:rleu=features.10:relu", "did you mean"},
      {"--arch cnn --loss fitnet --feature features.10:relu=nothing.here", "teacher feature"},
      {"--arch cnn --loss fitnet --feature features.10:relu=features.6:relu", "same rank"},
      {"--arch cnn --loss at --feature classifier.3:relu=classifier.3:relu", "attention transfer needs"},
      {"--arch cnn --loss fitnet", "--feature"},
      {"--arch cnn --feature features.10:relu", "STUDENT_VALUE=TEACHER_VALUE"},
      {"--arch cnn --temperature 0", "temperature"},
      {"--arch cnn --temperature -2", "temperature"},
      {"--arch cnn --alpha 1.5", "alpha"},
      {"--arch cnn --alpha -0.1", "alpha"},
      {"--arch cnn --loss kl", "unknown distillation loss"},
      {"--arch cnn --width 0", "width"},
      {"--arch cnn --cache-teacher sometimes", "--cache-teacher"},
      {"--arch cnn --student " + teacher, "exactly one student"},
      {"--prune-teacher 1.5", "(0, 1)"},
  };
  for (const auto& [args, text] : cases) {
    Run r = run(base + " " + args);
    INFO(args << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_THAT(r.out, Catch::Contains(text));
    CHECK_FALSE(fs::exists(out));
  }
}

TEST_CASE("the distillation example program distils a teacher into a half-width student", "[cli][distill][example]") {
  const TempDir dir("distill_example");
  const std::string data = make_set(dir, "train.pt", 256, 4);
  const std::string teacher = dir.file("teacher.pt"), student = dir.file("student.pt");
  REQUIRE(run("train --arch cnn --data " + data + " --epochs 2 --batch-size 32 --lr 0.05 --threads 1 --quiet -o " +
              teacher).code == 0);
  const std::string cmd = std::string(COMPRESS_BINARY_DIR) + "/bin/distill_example " + teacher + " " + data + " " +
                          student + " 2 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  INFO(out);
  REQUIRE(pclose(p) == 0);
  CHECK_THAT(out, Catch::Contains("student"));
  CHECK(fs::exists(student));
  CHECK(compress::models::count_parameters(torch::jit::load(student)) <
        compress::models::count_parameters(torch::jit::load(teacher)));
}
