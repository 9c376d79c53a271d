#pragma once
// Shared by the quantization examples: a labelled data set by name, and
// calibration batches from the start of its training split.
#include <algorithm>
#include <string>

#include <compress/data/dataset.h>
#include <compress/quantization/quantize.h>

namespace example {

// "fashion-mnist" (train or test split) or a tensor dataset file (.pt; the same file for both).
inline compress::data::TensorDataset load_split(const std::string& data, const std::string& split) {
  compress::data::TensorDataset ds = data == "fashion-mnist" ? compress::data::load_fashion_mnist(split)
                                                             : compress::data::load_tensor_dataset(data);
  ds.inputs = ds.inputs.to(at::kFloat);
  return ds;
}

// Up to `batches` consecutive batches of `batch` samples, produced on demand.
inline compress::quant::CalibrationData calibration(const compress::data::TensorDataset& ds, int64_t batch,
                                                    int64_t batches) {
  at::Tensor x = ds.inputs;
  return {std::min(batches, (x.size(0) + batch - 1) / batch), [x, batch](int64_t i) {
            return x.narrow(0, i * batch, std::min(batch, x.size(0) - i * batch));
          }};
}

}  // namespace example
