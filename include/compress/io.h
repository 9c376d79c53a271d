#pragma once
// File handling shared by every tool: loading TorchScript archives with clear
// errors, and writing outputs atomically (temporary file, then rename).
#include <functional>
#include <string>

#include <torch/script.h>

namespace compress {

// Loads a TorchScript archive onto the CPU. A missing, empty, non-archive or
// truncated file raises Error(BadInput) naming the file and the problem.
// INT8 weights saved in their storage form come back packed for this CPU's
// kernels (ops::pack_stored_weights), each held once.
torch::jit::Module load_module(const std::string& path);

// Checks that `path` names an existing, readable, non-empty regular file.
void require_input_file(const std::string& path);

// Whether two paths name the same file (the same inode when both exist, the
// same normalised path otherwise): what write_atomically's `protect` checks,
// for commands that refuse an output over an input before long work.
bool same_file(const std::string& a, const std::string& b);

// Writes `out_path` by calling `write(tmp_path)` on a temporary file
// ".NAME.tmp.<pid>.<random>" in the same folder, fsyncing it and the folder,
// renaming it into place and fsyncing the folder again: after a crash or a
// kill, `out_path` is the old file or the whole new one. On any failure the
// temporary file is removed. Before writing, temporary files of the same NAME
// left by processes that no longer exist (or older than a day) are removed.
// Refuses to overwrite `protect` (an input of the job) when given.
void write_atomically(const std::string& out_path,
                      const std::function<void(const std::string& tmp_path)>& write,
                      const std::string& protect = "");

// Saves a module atomically (see write_atomically), as write_module writes it.
void save_module(const torch::jit::Module& module, const std::string& out_path,
                 const std::string& protect = "");

// The TorchScript archive of `module` as this toolkit writes it: buffers in
// one storage per dtype, INT8 weights in their storage form (packed again
// when loaded), and an INT8 model's records deflated. LibTorch's and
// Python's loaders read it. The module is unchanged.
void write_module(const torch::jit::Module& module, std::ostream& out);

// The size of what write_module (and save_module) writes for `module`.
int64_t saved_size(const torch::jit::Module& module);

// Writes text atomically.
void write_text_file(const std::string& out_path, const std::string& text);

}  // namespace compress
