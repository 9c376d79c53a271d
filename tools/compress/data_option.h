#pragma once
// The --data option shared by `compress train` and `compress eval`:
// "fashion-mnist" or a tensor dataset file (compress::data::save_tensor_dataset).
#include <string>

#include "compress/data/dataset.h"
#include "compress/error.h"

namespace compress::cli {

// split: "train" or "test". For a file, the same file serves both unless the
// caller passes another.
inline data::TensorDataset load_data_option(const std::string& data, const std::string& split,
                                            const std::string& data_dir) {
  if (data.empty()) bad_input("--data is required (fashion-mnist or a tensor dataset file)");
  if (data == "fashion-mnist") return data::load_fashion_mnist(split, data_dir);
  if (data.size() > 3 && data.substr(data.size() - 3) == ".pt") return data::load_tensor_dataset(data);
  bad_input("--data " + data + ": unknown dataset (fashion-mnist, or a .pt tensor dataset file)");
}

}  // namespace compress::cli
