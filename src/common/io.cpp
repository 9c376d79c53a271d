#include "compress/io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <caffe2/serialize/file_adapter.h>
#include <caffe2/serialize/inline_container.h>

#include "compress/archive_check.h"
#include "compress/error.h"
#include "compress/ops/ops.h"
#include "compress/ops/script.h"

namespace fs = std::filesystem;

namespace compress {

void require_input_file(const std::string& path) {
  std::error_code ec;
  auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) bad_input(path + ": no such file");
  if (fs::is_directory(status)) bad_input(path + ": is a directory, not a model file");
  if (!fs::is_regular_file(status)) bad_input(path + ": not a regular file");
  if (fs::file_size(path, ec) == 0) bad_input(path + ": empty file");
  std::ifstream probe(path, std::ios::binary);
  if (!probe) bad_input(path + ": cannot be read (" + std::strerror(errno) + ")");
}

namespace {

// How long a trial load may take before it is given up on (and the module is
// loaded in this process, as without the trial): generous, since a large
// model on a busy machine loads slowly, and a hang is not a crash.
std::chrono::milliseconds trial_load_limit(const std::string& path) {
  std::error_code ec;
  const uintmax_t bytes = fs::file_size(path, ec);
  return std::chrono::seconds(120) + std::chrono::milliseconds(ec ? 0 : bytes / 10000);  // + 100 s per GB
}

constexpr int kTrialLoaded = 0, kTrialThrew = 3;

// torch::jit::load compiles the archive's TorchScript source (code/), and
// LibTorch's compiler trusts that source: a class body with an unannotated
// assignment crashes it (SEGV in ScriptTypeParser::parseClassConstant, found
// by fuzz_import; a valid CRC does not help). Short of a second TorchScript
// parser nothing can rule such crashes out, so the archive is first loaded
// by a forked child. A child that dies is a refusal naming the signal; a
// child that loaded the module, or refused it with an exception (which the
// load in this process then reports in its own words), lets the load go on.
// If the child cannot be started or does not finish in time, the module is
// loaded here as it would be without the trial.
void trial_load_in_child(const std::string& path) {
  std::fflush(nullptr);  // the child must not flush the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) return;
  if (pid == 0) {
    // The child's crash is the parent's to report: handlers inherited from
    // the parent (a sanitizer's or fuzzer's, a program's crash reporter) must
    // not act on it, and it leaves no core file.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP}) ::sigaction(sig, &default_action, nullptr);
    const struct rlimit no_core {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    // Quiet (LibTorch's warnings are the parent's to print) and on one
    // thread: an OpenMP pool the parent started does not survive fork.
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    at::set_num_threads(1);
    int code = kTrialLoaded;
    try {
      (void)torch::jit::load(path, c10::Device(c10::kCPU));
    } catch (...) {
      code = kTrialThrew;
    }
    ::_exit(code);
  }
  const auto deadline = std::chrono::steady_clock::now() + trial_load_limit(path);
  auto pause = std::chrono::microseconds(200);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return;  // not our child to wait for (SIGCHLD ignored): load here
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
  if (WIFEXITED(status) && (WEXITSTATUS(status) == kTrialLoaded || WEXITSTATUS(status) == kTrialThrew)) return;
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    bad_input(path + ": cannot load TorchScript model: LibTorch crashed reading it (signal " + std::to_string(sig) + ", " +
              strsignal(sig) + "); the archive is damaged or crafted");
  }
  bad_input(path + ": cannot load TorchScript model: LibTorch failed reading it (exit code " +
            std::to_string(WEXITSTATUS(status)) + " in a trial load); the archive is damaged or crafted");
}

}  // namespace

torch::jit::Module load_module(const std::string& path) {
  require_input_file(path);
  // A TorchScript archive is a zip file: say so plainly for anything else
  // rather than passing on the zip reader's internal message.
  {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {0, 0, 0, 0};
    in.read(magic, 4);
    if (in.gcount() < 4 || !(magic[0] == 'P' && magic[1] == 'K')) {
      bad_input(path + ": not a TorchScript model (not a zip archive; save it with "
                       "torch.jit.trace(model, x).save(...))");
    }
  }
  try {
    // LibTorch's zip reader trusts the archive's sizes, its unpickler sizes
    // strings from the pickle's length fields and takes tensor views from it
    // unchecked: check the zip structure and every pickle of the archive
    // against its record first, every tensor against its storage after.
    const std::string what = path + ": cannot load TorchScript model";
    auto file = std::make_shared<caffe2::serialize::FileAdapter>(path);
    const std::vector<ZipEntry> entries = check_zip(*file, what);
    caffe2::serialize::PyTorchStreamReader reader(file);
    check_archive_pickles(reader, entries, what);
    check_archive_code(reader, what);
    trial_load_in_child(path);
    torch::jit::Module m = torch::jit::load(path, c10::Device(c10::kCPU));
    check_module_tensors(m, path);
    // INT8 weights saved in their storage form, packed for this CPU now: the
    // module then holds each weight once, where the ops would keep a packing
    // beside the stored bytes (and a damaged blob is refused here, not at the
    // first forward).
    ops::pack_stored_weights(m);
    return m;
  } catch (const Error&) {
    throw;  // already one line naming the file
  } catch (const std::exception& e) {
    bad_input(path + ": cannot load TorchScript model: " + first_line_of(e));
  }
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (!fs::exists(a, ec) || !fs::exists(b, ec)) {
    return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
  }
  return fs::equivalent(a, b, ec);
}

namespace {

// Temporary files are named ".NAME.tmp.<pid>.<random>" next to NAME, so that
// one left behind by a killed process can be recognised (and its owner told
// apart) by the next write to NAME.
std::string temp_prefix(const fs::path& out) { return "." + out.filename().string() + ".tmp."; }

// How old a temporary file must be before it is removed even though a
// process with its pid exists (pids are reused; a write never takes a day).
constexpr auto kStaleAge = std::chrono::hours(24);

// The pid in a temporary file name "<prefix><pid>.<random>", or -1 when the
// name is not one of ours.
long owner_pid(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  size_t i = prefix.size(), start = i;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
  if (i == start || i - start > 9 || i >= name.size() || name[i] != '.') return -1;
  return std::stol(name.substr(start, i - start));
}

bool process_exists(long pid) { return ::kill(pid_t(pid), 0) == 0 || errno == EPERM; }

// The stale-file rule: a temporary file of NAME is removed when the process
// named in it no longer exists (it was killed mid-write), or when it is older
// than kStaleAge whoever owns it (its pid may since have been reused, or it
// came from another machine or pid namespace). A fresh file of a living
// process is left alone: it may be a write in progress. Files are never read,
// so one that survives is only clutter, never mistaken for output.
void remove_stale_temporaries(const fs::path& dir, const fs::path& out) {
  const std::string prefix = temp_prefix(out);
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = owner_pid(it->path().filename().string(), prefix);
    if (pid <= 0) continue;
    std::error_code tec;
    const auto mtime = fs::last_write_time(it->path(), tec);
    const bool old = !tec && now - mtime > kStaleAge;
    if (old || !process_exists(pid)) fs::remove(it->path(), tec);
  }
}

// fsync of a file or folder. Folders on some file systems refuse fsync with
// EINVAL: that is not an error (there is nothing more to make durable).
void sync_path(const std::string& path, bool is_dir, const std::string& out_path) {
  int fd = ::open(path.c_str(), is_dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) failure(out_path + ": cannot open " + path + " to sync it (" + std::strerror(errno) + ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !(is_dir && (err == EINVAL || err == EROFS))) {
    failure(out_path + ": cannot sync " + path + " to disk (" + std::strerror(err) + ")");
  }
}

}  // namespace

void write_atomically(const std::string& out_path,
                      const std::function<void(const std::string&)>& write,
                      const std::string& protect) {
  if (out_path.empty()) bad_input("no output file given");
  if (!protect.empty() && same_file(out_path, protect)) {
    bad_input(out_path + ": output would overwrite the input; choose another output file");
  }
  fs::path out(out_path);
  fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) bad_input(out_path + ": folder " + dir.string() + " does not exist");
  if (fs::is_directory(out, ec)) bad_input(out_path + ": is a directory");
  remove_stale_temporaries(dir, out);

  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof(suffix), "%08x", unsigned(rd()));
  std::string tmp = (dir / (temp_prefix(out) + std::to_string(::getpid()) + "." + suffix)).string();
  // Durable in this order: the temporary file's bytes, its entry in the
  // folder, then (after the rename) the folder again, so that after a crash
  // NAME is either the old file or the complete new one, never a torn one.
  try {
    write(tmp);
    sync_path(tmp, false, out_path);
    sync_path(dir.string(), true, out_path);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    failure(out_path + ": cannot write: " + ec.message());
  }
  sync_path(dir.string(), true, out_path);
}

namespace {

// Buffers set on a module for a while: the destructor puts the original
// tensors back, last set first.
class BufferSwaps {
 public:
  BufferSwaps() = default;
  BufferSwaps(const BufferSwaps&) = delete;
  BufferSwaps& operator=(const BufferSwaps&) = delete;
  ~BufferSwaps() {
    for (auto it = swapped_.rbegin(); it != swapped_.rend(); ++it) it->owner.setattr(it->name, it->original);
  }

 protected:
  void swap(torch::jit::Module owner, const std::string& name, const at::Tensor& replacement) {
    swapped_.push_back({owner, name, owner.attr(name).toTensor()});
    owner.setattr(name, replacement);
  }

 private:
  struct Swapped {
    torch::jit::Module owner;
    std::string name;
    at::Tensor original;
  };
  std::vector<Swapped> swapped_;
};

// While alive, every dense packed weight among the module's buffers is in
// its storage form (ops::packed_weight_for_storage: row-major, without the
// kernel layouts' padding, for any CPU; the ops pack it for theirs at its
// first call); the destructor puts the packings back. Runs before
// CoalescedBuffers, which then coalesces the stored forms.
class StoredWeights : BufferSwaps {
 public:
  explicit StoredWeights(const torch::jit::Module& module) {
    for (const auto& sub : module.modules()) {
      for (const auto& b : sub.named_buffers(/*recurse=*/false)) {
        const at::Tensor& t = b.value;
        if (!ops::is_packed_weight(t)) continue;
        at::Tensor stored;
        try {
          stored = ops::packed_weight_for_storage(t);
        } catch (const c10::Error&) {
          continue;  // a damaged blob: saved as it is, for the ops to refuse when it runs
        }
        if (!stored.is_same(t)) swap(sub, b.name, stored);
      }
    }
  }
};

// While alive, the module's buffers are views into one storage per dtype
// (each at a 64-byte boundary, the alignment the kernels want for packed
// weights); the destructor puts the original tensors back. A TorchScript
// archive holds one zip entry per storage, and each entry costs a local
// header, a central-directory record and up to 63 bytes of alignment
// padding: an INT8 model keeps three buffers a layer (packed weight, scale,
// bias), so for a small model like the zoo mobilenetv2 the entries were
// about a fifth of the file. Only buffers that own their storage whole are
// coalesced: a view, or a storage two tensors share, keeps its own entry
// so that what aliases what is saved as it is. Parameters are left alone
// (they are trained after loading, and Python's optimisers and `.grad`
// expect a tensor per storage). While the archive is written the module
// holds the views, so it must not run on another thread meanwhile.
class CoalescedBuffers : BufferSwaps {
 public:
  explicit CoalescedBuffers(const torch::jit::Module& module) {
    struct Slot {
      torch::jit::Module owner;
      std::string name;
      at::Tensor tensor;
    };
    std::vector<Slot> slots;
    std::map<const void*, int> storage_uses;
    for (const auto& sub : module.modules()) {
      for (const auto& b : sub.named_buffers(/*recurse=*/false)) {
        const at::Tensor& t = b.value;
        if (t.defined() && t.has_storage()) ++storage_uses[t.storage().unsafeGetStorageImpl()];
        slots.push_back({sub, b.name, t});
      }
    }
    std::map<c10::ScalarType, std::vector<const Slot*>> by_dtype;
    for (const Slot& s : slots) {
      const at::Tensor& t = s.tensor;
      const bool whole = t.defined() && t.layout() == at::kStrided && t.device().is_cpu() && t.has_storage() &&
                         !t.requires_grad() && t.numel() > 0 && t.is_contiguous() && t.storage_offset() == 0 &&
                         t.storage().nbytes() == size_t(t.numel()) * t.element_size() &&
                         storage_uses[t.storage().unsafeGetStorageImpl()] == 1;
      if (whole) by_dtype[t.scalar_type()].push_back(&s);
    }
    constexpr int64_t kAlign = 64;  // bytes; a multiple of every element size
    for (const auto& [dtype, group] : by_dtype) {
      if (group.size() < 2) continue;
      const int64_t item = int64_t(c10::elementSize(dtype));
      std::vector<int64_t> offsets;  // in elements
      int64_t bytes = 0;
      for (const Slot* s : group) {
        offsets.push_back(bytes / item);
        bytes += (int64_t(s->tensor.nbytes()) + kAlign - 1) / kAlign * kAlign;
      }
      // Zeros, so that the padding between tensors is the same in every file.
      const at::Tensor flat = at::zeros({bytes / item}, at::TensorOptions().dtype(dtype));
      for (size_t i = 0; i < group.size(); ++i) {
        const Slot& s = *group[i];
        at::Tensor view = flat.narrow(0, offsets[i], s.tensor.numel()).view(s.tensor.sizes());
        view.copy_(s.tensor);
        swap(s.owner, s.name, view);
      }
    }
  }
};

// Whether the module holds 8-bit buffers (an INT8 model's weights).
bool holds_int8_buffers(const torch::jit::Module& module) {
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    if (b.value.defined() && (b.value.scalar_type() == at::kChar || b.value.scalar_type() == at::kByte)) return true;
  }
  return false;
}

// An archive in memory, read in place.
class StringReadAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit StringReadAdapter(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - size_t(pos));
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

// Copies the TorchScript archive `archive` (as LibTorch wrote it) record by
// record to `out`, every record deflated. LibTorch writes tensor storages
// and data.pkl stored (so that a reader could map them); its reader inflates
// any record, so Python's torch.jit.load and C++ torch::jit::load read the
// result as they read LibTorch's own. INT8 weights deflate by 4-10% and
// data.pkl by 70%: for the zoo mobilenetv2 that is 0.285 -> 0.256 of its
// float file.
void write_deflated(const std::string& archive, std::ostream& out) {
  caffe2::serialize::PyTorchStreamReader reader(std::make_shared<StringReadAdapter>(archive));
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) -> size_t {
    out.write(static_cast<const char*>(data), std::streamsize(size));
    return out ? size : 0;
  });
  writer.setMinVersion(reader.version());
  for (const std::string& name : reader.getAllRecords()) {
    if (name == "version" || name == ".data/version") continue;  // the writer writes its own
    auto [data, size] = reader.getRecord(name);
    writer.writeRecord(name, data.get(), size, /*compress=*/true);
  }
  writer.writeEndOfFile();
}

}  // namespace

void write_module(const torch::jit::Module& module, std::ostream& out) {
  const bool int8 = holds_int8_buffers(module);
  const StoredWeights stored(module);
  const CoalescedBuffers coalesced(module);
  // To a stream: LibTorch names the archive's root folder after a file it
  // writes, which for save_module's temporary file would make every entry
  // ".NAME.tmp.PID.XXXXXXXX/..." (12 KB more for a 400-entry INT8
  // mobilenet_v2). A stream's archive is "archive/", as Python's
  // torch.jit.save to a file object writes it.
  //
  // An INT8 model's archive is written again with every record deflated
  // (write_deflated); a float model's is left as LibTorch writes it (its
  // storages would shrink by 7% at the cost of a deflate pass on every save
  // and an inflate pass on every load, and memory for the archive twice
  // over).
  if (int8) {
    std::ostringstream archive;
    module.save(archive);
    write_deflated(archive.str(), out);
  } else {
    module.save(out);
  }
}

int64_t saved_size(const torch::jit::Module& module) {
  std::ostringstream out;
  write_module(module, out);
  return static_cast<int64_t>(out.tellp());
}

void save_module(const torch::jit::Module& module, const std::string& out_path,
                 const std::string& protect) {
  write_atomically(
      out_path,
      [&](const std::string& tmp) {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) failure(out_path + ": cannot write " + tmp);
        try {
          write_module(module, f);
        } catch (const Error&) {
          throw;
        } catch (const std::exception& e) {
          failure(out_path + ": cannot save model: " + first_line_of(e));
        }
        f.close();
        if (!f) failure(out_path + ": cannot write (disk full?)");
      },
      protect);
}

void write_text_file(const std::string& out_path, const std::string& text) {
  write_atomically(out_path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    f.close();
    if (!f) failure(out_path + ": cannot write");
  });
}

}  // namespace compress
