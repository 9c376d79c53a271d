#pragma once
// Checks of a PyTorch zip archive (TorchScript model, torch.save / pickle_save
// file) made before LibTorch reads it, for what LibTorch itself does not
// bound. Its unpickler sizes a string from the pickle's length field before
// it finds the bytes missing: a crafted length of 4 GB reserves 4 GB
// (found by fuzz_checkpoint). Any problem raises Error(BadInput) with the
// problem, prefixed by `what: ` (the file, say) when `what` is not empty.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}
namespace c10 {
struct IValue;
}
namespace caffe2 {
namespace serialize {
class PyTorchStreamReader;
class ReadAdapterInterface;
}  // namespace serialize
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

// One entry of a zip archive's central directory.
struct ZipEntry {
  std::string name;          // the full name, "archive/data.pkl"
  uint64_t data_offset = 0;  // where its (compressed) bytes start
  uint64_t compressed_size = 0;
  uint64_t size = 0;     // uncompressed
  uint16_t method = 0;   // 0 stored (what PyTorch writes), 8 deflated
  uint32_t crc32 = 0;
};

// Our own walk of the zip structure, before LibTorch's reader (miniz) sees
// it: that reader allocates an entry's uncompressed size as the directory
// claims it (30 GB for a 2 KB file, found by fuzz_import) and skips CRC
// checks, so a damaged archive reaches the unpickler and the TorchScript
// compiler. Checks the end record (zip64 included), every central directory
// entry and its local header: offsets and sizes within the file, each
// entry's data before the directory, stored sizes equal, deflated claims
// within deflate's 1032:1 limit, no encryption or other methods; then reads
// every entry once: its CRC, and a deflated entry's real inflated size.
// Refuses with one line (BadInput, prefixed by `what: `) naming the entry.
std::vector<ZipEntry> check_zip(const caffe2::serialize::ReadAdapterInterface& in, const std::string& what);

// check_pickle on every pickle record of the archive (`*.pkl`, `*.debug_pkl`),
// and every storage it refers to no larger than its record (the unpickler
// sizes a storage by the claimed numel over a buffer of the record's size).
// `entries` (check_zip's, of the same archive) give the records' sizes.
void check_archive_pickles(caffe2::serialize::PyTorchStreamReader& reader, const std::vector<ZipEntry>& entries,
                           const std::string& what);

// The archive's TorchScript source (code/**.py): every statement of a class
// body that assigns a value without a type annotation (`name = value`) must
// be one of the four LibTorch writes itself (__parameters__, __buffers__,
// __forward_hooks__, __forward_pre_hooks__). LibTorch's compiler takes any
// other as a class constant and dereferences its missing type annotation
// (SEGV in ScriptTypeParser::parseClassConstant, fuzz_import): a crash that
// depends on the heap, so the trial load in a child process caught it only
// most of the time. Refuses with one line naming the record, the class and
// the name.
void check_archive_code(caffe2::serialize::PyTorchStreamReader& reader, const std::string& what);

// A file in torch::jit::pickle_save's format (checkpoints, mask files), read
// the checked way: check_zip and check_archive_pickles first, then LibTorch's
// unpickler over a reader that gives back only bytes that exist (its memory
// reader copies whatever a corrupt offset asks for). The caller checks the
// fields it takes from the result (check_tensor_storage for its tensors).
c10::IValue load_checked_pickle(const std::vector<char>& bytes, const std::string& what);

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
