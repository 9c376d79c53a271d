#pragma once
// Checks of a PyTorch zip archive (TorchScript model, torch.save / pickle_save
// file) made before LibTorch reads it, for what LibTorch itself does not
// bound. Its unpickler sizes a string from the pickle's length field before
// it finds the bytes missing: a crafted length of 4 GB reserves 4 GB
// (found by fuzz_checkpoint). Any problem raises Error(BadInput) with the
// problem, prefixed by `what: ` (the file, say) when `what` is not empty.
#include <cstddef>
#include <string>

namespace caffe2 {
namespace serialize {
class PyTorchStreamReader;
}
}  // namespace caffe2

namespace compress {

// Walks the pickle opcodes of one record up to its STOP: every length field
// (strings, bytes, longs) and every fixed-size or line argument must fit in
// the record, and every opcode must be one of the pickle protocol's.
void check_pickle(const char* data, size_t size, const std::string& what);

// check_pickle on every pickle record of the archive (`*.pkl`, `*.debug_pkl`).
void check_archive_pickles(caffe2::serialize::PyTorchStreamReader& reader, const std::string& what);

}  // namespace compress
