// The IDX reader on generated files, plain and gzip, and on each kind of
// corruption a downloaded or hand-made file can have.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "compress/data/dataset.h"
#include "compress/error.h"
#include "skip.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using compress::data::load_idx_pair;
using compress::data::read_idx;

using compress::testing::TempDir;

namespace {


std::vector<unsigned char> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<unsigned char>& data,
                                     unsigned char type = 0x08) {
  std::vector<unsigned char> b = {0, 0, type, (unsigned char)dims.size()};
  for (uint32_t d : dims) {
    b.push_back((unsigned char)(d >> 24));
    b.push_back((unsigned char)(d >> 16));
    b.push_back((unsigned char)(d >> 8));
    b.push_back((unsigned char)d);
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::string write_file(const TempDir& dir, const std::string& name, const std::vector<unsigned char>& bytes) {
  std::string p = dir.file(name);
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return p;
}

std::string gzip(const std::string& path) {
  std::string out = path + ".gz";
  std::string cmd = "gzip -c '" + path + "' > '" + out + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return out;
}

std::vector<unsigned char> pixels(size_t n) {
  std::vector<unsigned char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (unsigned char)((i * 37 + 11) % 256);
  return v;
}

// The error must be BadInput, name the file and say what is wrong.
void expect_bad(const std::function<void()>& f, const std::string& file, const std::string& problem) {
  try {
    f();
    FAIL("no error raised for " << file);
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains(file));
    CHECK_THAT(msg, Catch::Contains(problem));
  }
}

}  // namespace

TEST_CASE("read_idx reads plain and gzip files with the same content", "[idx]") {
  const TempDir dir("idx");
  auto data = pixels(3 * 4 * 5);
  std::string plain = write_file(dir, "img.idx", idx_bytes({3, 4, 5}, data));
  std::string gz = gzip(plain);
  for (const auto& p : {plain, gz}) {
    at::Tensor t = read_idx(p);
    REQUIRE(t.sizes() == at::IntArrayRef({3, 4, 5}));
    REQUIRE(t.scalar_type() == at::kByte);
    for (int i = 0; i < 60; ++i) REQUIRE(t.view(-1)[i].item<int>() == int(data[size_t(i)]));
  }
}

TEST_CASE("load_idx_pair scales pixels and pairs labels", "[idx]") {
  const TempDir dir("idx");
  std::string img = write_file(dir, "pair-img.idx", idx_bytes({2, 2, 2}, {0, 255, 51, 102, 0, 0, 0, 255}));
  std::string lab = gzip(write_file(dir, "pair-lab.idx", idx_bytes({2}, {3, 9})));
  auto ds = load_idx_pair(img, lab, 10, "pair");
  REQUIRE(ds.inputs.sizes() == at::IntArrayRef({2, 1, 2, 2}));
  CHECK(ds.inputs[0][0][0][1].item<float>() == Approx(1.0f));
  CHECK(ds.inputs[0][0][1][0].item<float>() == Approx(0.2f));
  CHECK(ds.labels[1].item<int64_t>() == 9);
  CHECK(ds.num_classes == 10);
}

TEST_CASE("IDX corruption gives one clear error naming the file", "[idx][errors]") {
  const TempDir dir("idx");
  auto good_images = idx_bytes({4, 3, 3}, pixels(36));
  auto good_labels = idx_bytes({4}, {0, 1, 2, 3});

  SECTION("missing file") {
    std::string p = dir.file("nowhere.idx");
    expect_bad([&] { read_idx(p); }, p, "no such file");
  }
  SECTION("wrong magic number") {
    auto b = good_images;
    b[0] = 0x1F;
    b[1] = 0x42;
    std::string p = write_file(dir, "magic.idx", b);
    expect_bad([&] { read_idx(p); }, p, "wrong magic number");
  }
  SECTION("unsupported element type") {
    std::string p = write_file(dir, "type.idx", idx_bytes({4}, std::vector<unsigned char>(16), 0x0D));
    expect_bad([&] { read_idx(p); }, p, "element type 0x0D");
  }
  SECTION("truncated data, plain and gzip") {
    auto b = good_images;
    b.resize(b.size() - 5);
    std::string p = write_file(dir, "short.idx", b);
    expect_bad([&] { read_idx(p); }, p, "truncated");
    std::string gz = gzip(p);
    expect_bad([&] { read_idx(gz); }, gz, "truncated");
  }
  SECTION("truncated header") {
    auto b = good_images;
    b.resize(9);
    std::string p = write_file(dir, "header.idx", b);
    expect_bad([&] { read_idx(p); }, p, "truncated");
  }
  SECTION("gzip stream cut short") {
    std::string gz = gzip(write_file(dir, "whole.idx", idx_bytes({64, 28, 28}, pixels(64 * 784))));
    auto size = fs::file_size(gz);
    fs::resize_file(gz, size / 2);
    expect_bad([&] { read_idx(gz); }, gz, "truncated");
  }
  SECTION("trailing bytes") {
    auto b = good_images;
    b.push_back(7);
    std::string p = write_file(dir, "long.idx", b);
    expect_bad([&] { read_idx(p); }, p, "trailing bytes");
  }
  SECTION("a gzip stream that expands past its header's size (gzip bomb)") {
    // 8 bytes announced, 3 MiB of zeros behind them: a few KiB of gzip. The
    // reader stops once the content passes header + data + 1 MiB of slack.
    auto b = idx_bytes({2, 2, 2}, pixels(8));
    b.resize(b.size() + (size_t(3) << 20), 0);
    std::string gz = gzip(write_file(dir, "bomb.idx", b));
    REQUIRE(fs::file_size(gz) < 64 * 1024);
    expect_bad([&] { read_idx(gz); }, gz, "decompresses to more than its IDX header announces (24 bytes");
    // A bad first word is still reported as such, not as a bomb.
    b[2] = 0x0D;
    std::string odd = gzip(write_file(dir, "bomb-type.idx", b));
    expect_bad([&] { read_idx(odd); }, odd, "element type 0x0D");
  }
  SECTION("image and label counts differ") {
    std::string img = write_file(dir, "count-img.idx", good_images);
    std::string lab = write_file(dir, "count-lab.idx", idx_bytes({3}, {0, 1, 2}));
    expect_bad([&] { load_idx_pair(img, lab, 10, "x"); }, lab, "holds 4 images but");
  }
  SECTION("label out of range") {
    std::string img = write_file(dir, "range-img.idx", good_images);
    std::string lab = write_file(dir, "range-lab.idx", idx_bytes({4}, {0, 1, 10, 3}));
    expect_bad([&] { load_idx_pair(img, lab, 10, "x"); }, lab, "label 10 at index 2 is out of range");
  }
  SECTION("labels where images are expected") {
    std::string img = write_file(dir, "rank-img.idx", good_labels);
    std::string lab = write_file(dir, "rank-lab.idx", good_labels);
    expect_bad([&] { load_idx_pair(img, lab, 10, "x"); }, img, "rank 3");
  }
}

TEST_CASE("Fashion-MNIST from the Debian package loads with the documented sizes", "[idx][fashion]") {
  std::string dir = compress::data::fashion_mnist_dir();
  if (!fs::exists(dir + "/t10k-images-idx3-ubyte.gz"))
    COMPRESS_SKIP("dataset-fashion-mnist is not installed (scripts/setup.sh installs it)");
  auto test = compress::data::load_fashion_mnist("test");
  REQUIRE(test.size() == 10000);
  REQUIRE(test.inputs.sizes() == at::IntArrayRef({10000, 1, 28, 28}));
  // Fashion-MNIST's test set is balanced: 1000 of each class.
  at::Tensor counts = at::bincount(test.labels);
  REQUIRE(counts.size(0) == 10);
  CHECK(counts.min().item<int64_t>() == 1000);
  CHECK(counts.max().item<int64_t>() == 1000);
  CHECK(test.inputs.min().item<float>() >= 0.0f);
  CHECK(test.inputs.max().item<float>() <= 1.0f);
  expect_bad([&] { compress::data::load_fashion_mnist("valid"); }, "valid", "unknown split");
}

TEST_CASE("a test's temporary folder is removed at its end, also when the case fails", "[hygiene]") {
  fs::path kept;
  {
    const TempDir dir("hygiene");
    kept = dir.path();
    write_file(dir, "a.idx", idx_bytes({2}, {1, 2}));
    fs::create_directories(kept / "sub");
    REQUIRE(fs::exists(kept / "a.idx"));
    CHECK(kept.filename().string().rfind("compress_test_hygiene_", 0) == 0);
  }
  CHECK_FALSE(fs::exists(kept));
  try {
    const TempDir dir("hygiene");
    kept = dir.path();
    throw std::runtime_error("a failing REQUIRE unwinds the same way");
  } catch (const std::runtime_error&) {
  }
  CHECK_FALSE(fs::exists(kept));
}
