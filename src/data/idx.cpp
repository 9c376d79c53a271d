// IDX reader: gzip or plain bytes (gz_file.cpp), then the IDX header checks.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "compress/data/dataset.h"
#include "compress/error.h"
#include "gz_file.h"

namespace compress::data {
namespace {

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Trailing bytes up to this many are read, so that the header checks below
// can say how many there are; beyond it the stream is refused while reading.
constexpr size_t kTrailingSlack = size_t(1) << 20;

// What an IDX file may hold given its first bytes: unbounded until the header
// is complete, then header + the data it announces + kTrailingSlack.
// A header whose first word read_idx refuses (magic, element type, rank).
bool bad_first_word(const std::vector<unsigned char>& b) {
  return b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] < 1 || b[3] > 4;
}

size_t idx_limit(const std::vector<unsigned char>& b) {
  if (b.size() < 4) return SIZE_MAX;
  if (bad_first_word(b)) return 4 + kTrailingSlack;  // enough for read_idx to say what is wrong
  const size_t header = 4 + 4 * size_t(b[3]);
  if (b.size() < header) return SIZE_MAX;
  constexpr uint64_t kCap = uint64_t(1) << 40;  // far above read_idx's own plausibility bound
  uint64_t count = 1;
  for (size_t i = 4; i < header; i += 4) {
    const uint64_t d = big_endian_u32(&b[i]);
    count = (d != 0 && count > kCap / d) ? kCap : count * d;
  }
  return header + size_t(count) + kTrailingSlack;
}

std::vector<unsigned char> read_all_bytes(const std::string& path) {
  std::vector<unsigned char> bytes;
  std::string why;
  switch (compress_zlib::read_file(path, bytes, why, idx_limit)) {
    case compress_zlib::GzStatus::Ok: return bytes;
    case compress_zlib::GzStatus::Missing: bad_input(path + ": no such file");
    case compress_zlib::GzStatus::CannotOpen: bad_input(path + ": cannot be opened (" + why + ")");
    case compress_zlib::GzStatus::Truncated: bad_input(path + ": truncated gzip file (" + why + ")");
    case compress_zlib::GzStatus::Corrupt: bad_input(path + ": corrupt gzip file (" + why + ")");
    case compress_zlib::GzStatus::TooLong:
      if (bad_first_word(bytes)) return bytes;  // read_idx names the header's problem
      bad_input(path + ": decompresses to more than its IDX header announces (" +
                std::to_string(idx_limit(bytes) - kTrailingSlack) + " bytes with the header); refused while reading");
  }
  bad_input(path + ": cannot be read");
}

}  // namespace

at::Tensor read_idx(const std::string& path) {
  std::vector<unsigned char> b = read_all_bytes(path);
  if (b.size() < 4) bad_input(path + ": truncated IDX file (" + std::to_string(b.size()) + " bytes, no header)");
  if (b[0] != 0 || b[1] != 0) {
    char magic[16];
    std::snprintf(magic, sizeof(magic), "0x%02X%02X%02X%02X", b[0], b[1], b[2], b[3]);
    bad_input(path + ": not an IDX file (wrong magic number " + magic +
              ", expected 0x0000 then type and rank, e.g. 0x00000803)");
  }
  if (b[2] != 0x08) {
    char t[8];
    std::snprintf(t, sizeof(t), "0x%02X", b[2]);
    bad_input(path + ": IDX element type " + t + " is not supported (only unsigned bytes, 0x08)");
  }
  const int rank = b[3];
  if (rank < 1 || rank > 4) bad_input(path + ": IDX rank " + std::to_string(rank) + " is not in 1..4");
  const size_t header = 4 + 4 * size_t(rank);
  if (b.size() < header) bad_input(path + ": truncated IDX file (header cut short)");
  std::vector<int64_t> dims;
  uint64_t count = 1;
  std::string shape;
  for (int i = 0; i < rank; ++i) {
    uint32_t d = big_endian_u32(&b[4 + 4 * i]);
    dims.push_back(int64_t(d));
    count *= d;
    shape += (i ? " x " : "") + std::to_string(d);
    if (count > (uint64_t(1) << 36)) bad_input(path + ": IDX dimensions " + shape + " are implausibly large");
  }
  const uint64_t have = b.size() - header;
  if (have < count) {
    bad_input(path + ": truncated IDX file (header says " + shape + " = " + std::to_string(count) +
              " bytes of data, file holds " + std::to_string(have) + ")");
  }
  if (have > count) {
    bad_input(path + ": " + std::to_string(have - count) + " trailing bytes after the " + shape +
              " IDX data (wrong header or concatenated files)");
  }
  at::Tensor t = at::empty(dims, at::kByte);
  if (count) std::memcpy(t.data_ptr<uint8_t>(), b.data() + header, count);
  return t;
}

TensorDataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                            int64_t num_classes, const std::string& name) {
  at::Tensor images = read_idx(images_path);
  at::Tensor labels = read_idx(labels_path);
  if (images.dim() != 3) {
    bad_input(images_path + ": expected an IDX image file of rank 3 (count x rows x cols), found rank " +
              std::to_string(images.dim()));
  }
  if (labels.dim() != 1) {
    bad_input(labels_path + ": expected an IDX label file of rank 1, found rank " + std::to_string(labels.dim()));
  }
  if (images.size(0) != labels.size(0)) {
    bad_input(images_path + " holds " + std::to_string(images.size(0)) + " images but " + labels_path +
              " holds " + std::to_string(labels.size(0)) + " labels");
  }
  const uint8_t* lp = labels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < labels.size(0); ++i) {
    if (lp[i] >= num_classes) {
      bad_input(labels_path + ": label " + std::to_string(int(lp[i])) + " at index " + std::to_string(i) +
                " is out of range (expected 0.." + std::to_string(num_classes - 1) + ")");
    }
  }
  TensorDataset ds;
  ds.inputs = images.unsqueeze(1).to(at::kFloat).div_(255.0f);
  ds.labels = labels.to(at::kLong);
  ds.num_classes = num_classes;
  ds.name = name;
  return ds;
}

std::string fashion_mnist_dir() {
  if (const char* d = std::getenv("COMPRESS_DATA_DIR"); d && *d) return std::string(d) + "/fashion-mnist";
  return "/usr/share/datasets/fashion-mnist";
}

TensorDataset load_fashion_mnist(const std::string& split, const std::string& dir_in) {
  std::string dir = dir_in.empty() ? fashion_mnist_dir() : dir_in;
  std::string stem;
  if (split == "train") stem = "train";
  else if (split == "test") stem = "t10k";
  else bad_input("fashion-mnist: unknown split '" + split + "' (train or test)");
  auto pick = [&](const std::string& base) {
    // Prefer the compressed file Debian ships; accept an unpacked copy.
    std::string gz = dir + "/" + base + ".gz";
    std::error_code ec;
    if (std::filesystem::exists(gz, ec)) return gz;
    std::string plain = dir + "/" + base;
    if (std::filesystem::exists(plain, ec)) return plain;
    bad_input(gz + ": no such file (install the dataset-fashion-mnist package, scripts/setup.sh, "
                   "or set COMPRESS_DATA_DIR)");
  };
  return load_idx_pair(pick(stem + "-images-idx3-ubyte"), pick(stem + "-labels-idx1-ubyte"), 10,
                       "fashion-mnist " + split);
}

const char* const* fashion_mnist_class_names() {
  static const char* const names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace compress::data
