// Shuffling, augmentation, splitting, batching: deterministic from the seed,
// independent of the prefetch thread's timing, resumable at any batch.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "compress/archive_check.h"
#include "compress/data/dataset.h"
#include "compress/data/loader.h"
#include "compress/error.h"
#include "temp_dir.h"
#include "test_paths.h"

using namespace compress::data;

namespace {

TensorDataset numbered(int64_t n, int64_t c = 1, int64_t h = 4, int64_t w = 4) {
  // Sample i is filled with the value i, so a batch tells which samples it holds.
  TensorDataset ds;
  ds.inputs = at::arange(n, at::kFloat).view({n, 1, 1, 1}).expand({n, c, h, w}).contiguous();
  ds.labels = at::arange(n, at::kLong) % 3;
  ds.num_classes = 3;
  ds.name = "numbered";
  return ds;
}

}  // namespace

TEST_CASE("epoch_order is a seeded permutation, different per epoch", "[loader]") {
  auto a = epoch_order(1000, 7, 0, true);
  std::set<int64_t> seen(a.begin(), a.end());
  REQUIRE(seen.size() == 1000);
  REQUIRE(*seen.begin() == 0);
  REQUIRE(*seen.rbegin() == 999);
  CHECK(a == epoch_order(1000, 7, 0, true));
  CHECK(a != epoch_order(1000, 7, 1, true));
  CHECK(a != epoch_order(1000, 8, 0, true));
  auto id = epoch_order(10, 7, 0, false);
  for (int64_t i = 0; i < 10; ++i) CHECK(id[size_t(i)] == i);
}

TEST_CASE("flip mirrors whole samples, crop shifts within the padding", "[loader][augment]") {
  const int64_t b = 64, h = 6, w = 6;
  at::Tensor x = at::arange(b * h * w, at::kFloat).view({b, 1, h, w});
  SECTION("flip only") {
    Augment aug;
    aug.horizontal_flip = true;
    at::Tensor y = augment_batch(x, aug, 123);
    int flipped = 0, kept = 0;
    for (int64_t i = 0; i < b; ++i) {
      if (at::equal(y[i], x[i])) ++kept;
      else if (at::equal(y[i], x[i].flip({2}))) ++flipped;
      else FAIL("sample " << i << " is neither the original nor its mirror");
    }
    CHECK(flipped > 10);
    CHECK(kept > 10);
    CHECK(at::equal(y, augment_batch(x, aug, 123)));
    CHECK_FALSE(at::equal(y, augment_batch(x, aug, 124)));
  }
  SECTION("crop with padding") {
    Augment aug;
    aug.crop_padding = 2;
    at::Tensor y = augment_batch(x, aug, 5);
    at::Tensor padded = at::constant_pad_nd(x, {2, 2, 2, 2}, 0.0);
    int shifted = 0;
    for (int64_t i = 0; i < b; ++i) {
      bool found = false;
      for (int64_t dy = 0; dy <= 4 && !found; ++dy)
        for (int64_t dx = 0; dx <= 4 && !found; ++dx)
          if (at::equal(y[i], padded[i].narrow(1, dy, h).narrow(2, dx, w))) {
            found = true;
            shifted += (dy != 2 || dx != 2);
          }
      REQUIRE(found);
    }
    CHECK(shifted > b / 2);
  }
}

TEST_CASE("train_val_split is a seeded partition", "[loader]") {
  auto ds = numbered(100);
  auto [tr, va] = train_val_split(ds, 0.2, 3);
  REQUIRE(tr.size() == 80);
  REQUIRE(va.size() == 20);
  std::set<int64_t> all;
  for (auto* part : {&tr, &va})
    for (int64_t i = 0; i < part->size(); ++i) all.insert(int64_t(part->inputs[i][0][0][0].item<float>()));
  CHECK(all.size() == 100);
  auto [tr2, va2] = train_val_split(ds, 0.2, 3);
  CHECK(at::equal(va.inputs, va2.inputs));
  auto [tr3, va3] = train_val_split(ds, 0.2, 4);
  CHECK_FALSE(at::equal(va.inputs, va3.inputs));
  CHECK_THROWS_AS(train_val_split(ds, 1.0, 3), compress::Error);
}

TEST_CASE("the loader visits every sample once per epoch, same as synchronous batches", "[loader]") {
  auto ds = numbered(50);
  LoaderOptions opt;
  opt.batch_size = 8;
  opt.seed = 11;
  opt.augment.horizontal_flip = true;
  Loader loader(ds, opt);
  REQUIRE(loader.batches_per_epoch() == 7);
  for (int64_t epoch : {0, 1}) {
    auto order = epoch_order(50, 11, epoch, true);
    loader.start_epoch(epoch);
    std::multiset<int64_t> ids;
    int64_t k = 0;
    while (auto b = loader.next()) {
      REQUIRE(b->index == k);
      Batch expect = loader.make_batch(epoch, k, order);
      REQUIRE(at::equal(b->inputs, expect.inputs));
      REQUIRE(at::equal(b->labels, expect.labels));
      for (int64_t i = 0; i < b->inputs.size(0); ++i) ids.insert(int64_t(b->inputs[i][0][0][0].item<float>()));
      ++k;
    }
    REQUIRE(k == 7);
    std::set<int64_t> unique(ids.begin(), ids.end());
    CHECK(ids.size() == 50);
    CHECK(unique.size() == 50);
  }
  SECTION("starting mid-epoch yields the same later batches") {
    auto order = epoch_order(50, 11, 1, true);
    loader.start_epoch(1, 4);
    auto b = loader.next();
    REQUIRE(b);
    CHECK(b->index == 4);
    CHECK(at::equal(b->inputs, loader.make_batch(1, 4, order).inputs));
  }
  SECTION("an epoch can be abandoned and restarted") {
    loader.start_epoch(0);
    loader.next();
    loader.start_epoch(0);
    int n = 0;
    while (loader.next()) ++n;
    CHECK(n == 7);
  }
}

TEST_CASE("normalisation uses per-channel statistics", "[loader]") {
  TensorDataset ds;
  ds.inputs = at::rand({200, 2, 3, 3}) * at::tensor({1.0f, 5.0f}).view({1, 2, 1, 1});
  ds.labels = at::zeros({200}, at::kLong);
  ds.num_classes = 1;
  auto [mean, std] = channel_stats(ds.inputs);
  REQUIRE(mean.numel() == 2);
  LoaderOptions opt;
  opt.batch_size = 200;
  opt.shuffle = false;
  opt.mean = mean;
  opt.std = std;
  Loader loader(ds, opt);
  at::Tensor x = loader.make_batch(0, 0, epoch_order(200, 0, 0, false)).inputs;
  auto [m2, s2] = channel_stats(x);
  CHECK(m2.abs().max().item<float>() < 1e-4f);
  CHECK((s2 - 1).abs().max().item<float>() < 1e-4f);
}

TEST_CASE("tensor datasets save and load, bad ones are refused", "[dataset]") {
  const compress::testing::TempDir tmp("ds");
  const std::filesystem::path& dir = tmp.path();
  auto ds = numbered(12);
  std::string p = (dir / "set.pt").string();
  save_tensor_dataset(ds, p);
  auto back = load_tensor_dataset(p);
  CHECK(at::equal(back.inputs, ds.inputs));
  CHECK(at::equal(back.labels, ds.labels));
  CHECK(back.num_classes == 3);
  ds.labels[0] = 7;
  std::string bad = (dir / "bad.pt").string();
  save_tensor_dataset(ds, bad);
  try {
    load_tensor_dataset(bad);
    FAIL("out-of-range label accepted");
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    CHECK_THAT(std::string(e.what()), Catch::Contains(bad));
  }
  // A num_classes attribute that is no integer: one clear line, not a LibTorch error.
  torch::jit::Module m("__torch__.TensorDataset");
  m.register_attribute("inputs", c10::TensorType::get(), ds.inputs);
  m.register_attribute("labels", c10::TensorType::get(), numbered(12).labels);
  m.register_attribute("num_classes", c10::StringType::get(), std::string("three"));
  std::string odd = (dir / "odd.pt").string();
  m.save(odd);
  try {
    load_tensor_dataset(odd);
    FAIL("a string num_classes was accepted");
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    CHECK_THAT(std::string(e.what()), Catch::Contains("'num_classes' must be a positive integer"));
  }
}

TEST_CASE("tensor datasets keep token ids as integers and read other inputs as float32", "[dataset]") {
  const compress::testing::TempDir tmp("ds");
  TensorDataset ids;
  ids.inputs = at::randint(0, 100, {6, 12}, at::kLong);
  ids.labels = at::randint(0, 3, {6}, at::kLong);
  ids.num_classes = 3;
  save_tensor_dataset(ids, tmp.file("ids.pt"));
  const TensorDataset back = load_tensor_dataset(tmp.file("ids.pt"));
  CHECK(back.inputs.scalar_type() == at::kLong);
  CHECK(at::equal(back.inputs, ids.inputs));
  TensorDataset bytes = ids;
  bytes.inputs = at::randint(0, 256, {6, 1, 4, 4}, at::kByte);
  save_tensor_dataset(bytes, tmp.file("bytes.pt"));
  const TensorDataset pixels = load_tensor_dataset(tmp.file("bytes.pt"));
  CHECK(pixels.inputs.scalar_type() == at::kFloat);
  CHECK(at::equal(pixels.inputs, bytes.inputs.to(at::kFloat)));
}

namespace {

// A tensor whose sizes, strides and offset are set without LibTorch's bounds
// check, as the unpickler sets them from a crafted file.
at::Tensor viewing(at::Tensor storage_of, at::IntArrayRef sizes, at::IntArrayRef strides, int64_t offset = 0) {
  at::Tensor t = storage_of.detach().clone();
  t.unsafeGetTensorImpl()->set_sizes_and_strides(sizes, strides);
  t.unsafeGetTensorImpl()->set_storage_offset(offset);
  return t;
}

}  // namespace

TEST_CASE("a tensor that views past its storage is refused on load, naming the file and the tensor", "[dataset]") {
  using compress::check_tensor_storage;
  const at::Tensor four = at::zeros({4});  // a storage of 16 bytes
  CHECK_NOTHROW(check_tensor_storage(viewing(four, {2, 2}, {2, 1}), "t"));
  CHECK_NOTHROW(check_tensor_storage(viewing(four, {2}, {1}, 2), "t"));
  CHECK_NOTHROW(check_tensor_storage(viewing(four, {0, 1000}, {1000, 1}, 9), "t"));  // empty: reads nothing
  CHECK_THROWS_WITH(check_tensor_storage(viewing(four, {5}, {1}), "t"),
                    "t of shape [5], strides [1] and offset 0 reaches past its storage of 16 bytes");
  CHECK_THROWS_WITH(check_tensor_storage(viewing(four, {2}, {1}, 3), "t"), Catch::Contains("offset 3 reaches past"));
  CHECK_THROWS_WITH(check_tensor_storage(viewing(four, {2}, {int64_t(1) << 62}), "t"),
                    Catch::Contains("reaches past"));  // the last byte's offset overflows int64

  // Saved and loaded as a tensor dataset: the file keeps the storage and the view.
  const compress::testing::TempDir tmp("ds");
  const std::string p = (tmp.path() / "past.pt").string();
  torch::jit::Module m("__torch__.TensorDataset");
  m.register_attribute("inputs", c10::TensorType::get(), viewing(at::zeros({2, 3}), {4, 3}, {3, 1}));
  m.register_attribute("labels", c10::TensorType::get(), at::zeros({4}, at::kLong));
  m.save(p);
  try {
    load_tensor_dataset(p);
    FAIL("a tensor past its storage was accepted");
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    CHECK(std::string(e.what()) ==
          p + ": tensor 'inputs' of shape [4, 3], strides [3, 1] and offset 0 reaches past its storage of 24 bytes");
  }

  // A storage reference claiming more elements than its record holds (the
  // unpickler would size the storage by the claim): refused before loading.
  const std::string claim = (tmp.path() / "claim.pt").string();
  std::filesystem::copy_file(
      std::filesystem::path(COMPRESS_SOURCE_DIR) / "tests/fuzz/corpus/dataset/regression_storage_numel_past_record", claim);
  try {
    load_tensor_dataset(claim);
    FAIL("a storage larger than its record was accepted");
  } catch (const compress::Error& e) {
    CHECK(e.kind() == compress::ErrorKind::BadInput);
    CHECK(std::string(e.what()) == claim + ": cannot load TorchScript model: record data.pkl: storage '0' claims "
                                           "1000 bytes, its record data/0 holds 144");
  }
  // Only the form LibTorch writes is followed: another one is refused.
  std::vector<compress::StorageRef> refs;
  const std::string odd("\x80\x02(X\x07\0\0\0storageK\x01X\x01\0\0\0" "0K\x05tQ.", 28);
  CHECK_THROWS_WITH(compress::check_pickle(odd.data(), odd.size(), "x", &refs),
                    Catch::Contains("a tensor storage reference not in the form LibTorch writes"));
  const std::string good("\x80\x02(X\x07\0\0\0storagectorch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpuK\x05tQ.",
                         54);
  REQUIRE_NOTHROW(compress::check_pickle(good.data(), good.size(), "x", &refs));
  REQUIRE(refs.size() == 1);
  CHECK(refs[0].key == "0");
  CHECK(refs[0].bytes == 20);
}
