#pragma once
// Datasets held in memory as two tensors: inputs [N, ...] and labels [N].
// Fashion-MNIST is 47 MB of pixels, so keeping whole sets resident is the
// simplest thing that keeps the loader from ever touching the disk mid-epoch.
#include <cstdint>
#include <string>
#include <utility>

#include <ATen/ATen.h>

namespace compress::data {

struct TensorDataset {
  at::Tensor inputs;        // float32 [N, C, H, W] (or [N, F]); pixels in [0, 1] for image sets;
                            // int64 / int32 [N, T] token ids for text sets (load_tensor_dataset keeps them)
  at::Tensor labels;        // int64 [N], each in [0, num_classes)
  int64_t num_classes = 0;
  std::string name;         // for messages ("fashion-mnist train")

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Reads an IDX file (http://yann.lecun.com/exdb/mnist/ layout), gzip-compressed
// or plain; only the unsigned-byte element type (0x08) is accepted, which is
// what every MNIST-family set uses. Any problem raises Error(BadInput) naming
// the file: missing, not gzip/IDX (wrong magic), truncated, trailing bytes.
at::Tensor read_idx(const std::string& path);

// Pairs an image file [N, H, W] with a label file [N]: images become float32
// [N, 1, H, W] scaled to [0, 1]. Checks that the counts agree and that every
// label lies in [0, num_classes).
TensorDataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                            int64_t num_classes, const std::string& name);

// Where Fashion-MNIST lives: $COMPRESS_DATA_DIR/fashion-mnist if set, else
// Debian's dataset-fashion-mnist location.
std::string fashion_mnist_dir();
// split = "train" (60000) or "test" (10000).
TensorDataset load_fashion_mnist(const std::string& split, const std::string& dir = "");

// The class names of Fashion-MNIST, in label order (for reports).
const char* const* fashion_mnist_class_names();

// A set saved by save_tensor_dataset: a TorchScript archive holding tensor
// attributes `inputs` and `labels` and an int `num_classes` (readable from
// Python with torch.jit.load(path).inputs).
TensorDataset load_tensor_dataset(const std::string& path);
void save_tensor_dataset(const TensorDataset& ds, const std::string& path);

// Per-channel mean and standard deviation over inputs [N, C, ...].
std::pair<at::Tensor, at::Tensor> channel_stats(const at::Tensor& inputs);

// A deterministic split: a permutation drawn from `seed` puts
// round(val_fraction * N) samples in the second set, the rest in the first.
std::pair<TensorDataset, TensorDataset> train_val_split(const TensorDataset& ds, double val_fraction,
                                                        uint64_t seed);

// First `n` samples (or all if n <= 0 or n >= size): for quick runs and tests.
TensorDataset take(const TensorDataset& ds, int64_t n);

}  // namespace compress::data
