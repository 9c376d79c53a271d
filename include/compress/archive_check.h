#pragma once
// Checks of a PyTorch zip archive (TorchScript model, torch.save / pickle_save
// file) made before LibTorch reads it, for what LibTorch itself does not
// bound. Its unpickler sizes a string from the pickle's length field before
// it finds the bytes missing: a crafted length of 4 GB reserves 4 GB
// (found by fuzz_checkpoint). Any problem raises Error(BadInput) with the
// problem, prefixed by `what: ` (the file, say) when `what` is not empty.
#include <cstddef>
#include <string>
#include <vector>

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}
namespace caffe2 {
namespace serialize {
class PyTorchStreamReader;
}
}  // namespace caffe2

namespace compress {

// Walks the pickle opcodes of one record up to its STOP: every length field
// (strings, bytes, longs) and every fixed-size or line argument must fit in
// the record, and every opcode must be one of the pickle protocol's.
// With `storages`, also requires every tensor storage reference (BINPERSID)
// in the form LibTorch writes and lists what each claims.
struct StorageRef {
  std::string key;  // the record (data/KEY, constants/KEY)
  uint64_t bytes;   // numel * element size, as the reference claims
};
void check_pickle(const char* data, size_t size, const std::string& what,
                  std::vector<StorageRef>* storages = nullptr);

// check_pickle on every pickle record of the archive (`*.pkl`, `*.debug_pkl`),
// and every storage it refers to no larger than its record (the unpickler
// sizes a storage by the claimed numel over a buffer of the record's size).
void check_archive_pickles(caffe2::serialize::PyTorchStreamReader& reader, const std::string& what);

// The unpickler takes a tensor's sizes, strides and storage offset from the
// pickle without checking them against its storage (a record of the
// archive): a crafted size makes a tensor that views memory past its
// storage, which every later read would touch. Refuses one whose view does
// not lie within its storage, naming `what` (the tensor).
void check_tensor_storage(const at::Tensor& t, const std::string& what);

// check_tensor_storage on every tensor reachable from the module: its
// attributes (parameters, buffers, tensors in lists, tuples, dictionaries and
// objects), those of its submodules, and the tensor constants of its methods'
// graphs. Messages start with `file: `.
void check_module_tensors(const torch::jit::Module& module, const std::string& file);

}  // namespace compress
