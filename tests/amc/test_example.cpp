// examples/amc: the library's AMC search end to end in a separate program.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_check.h"
#include "compress/data/dataset.h"
#include "compress/io.h"
#include "compress/models/zoo.h"
#include "skip.h"
#include "temp_dir.h"

TEST_CASE("the amc example program searches ratios and prunes a tiny model with them", "[amc][example]") {
  namespace fs = std::filesystem;
  using compress::testing::run_program;
  const std::string example = std::string(COMPRESS_BINARY_DIR) + "/bin/amc_example";
  if (!fs::exists(example)) COMPRESS_SKIP("the examples were not built (COMPRESS_BUILD_EXAMPLES=OFF)");
  const compress::testing::TempDir dir("amc_example");
  const std::string model = dir.file("tiny.pt"), data = dir.file("data.pt"), ratios = dir.file("ratios.json");
  const std::string pruned = dir.file("pruned.pt"), err = dir.file("stderr.txt");
  compress::save_module(compress::models::build("cnn", 0, 10, 0.25).module, model);
  compress::data::TensorDataset ds;
  ds.inputs = at::rand({320, 1, 28, 28});
  ds.labels = at::randint(0, 10, {320});
  ds.num_classes = 10;
  compress::data::save_tensor_dataset(ds, data);

  auto r = run_program(example + " " + model + " " + data + " " + ratios + " 6 " + pruned, err);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("best episode") != std::string::npos);
  std::ifstream in(ratios);
  CHECK_FALSE(nlohmann::json::parse(in).empty());  // half the MACs: some group was pruned
  CHECK(fs::exists(pruned));

  // No episode: one line, exit 2, nothing written.
  const std::string never = dir.file("never.json");
  compress::testing::check_bad_input(run_program(example + " " + model + " " + data + " " + never + " 0", err),
                                     "--episodes must be positive");
  CHECK_FALSE(fs::exists(never));
}
