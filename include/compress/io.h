#pragma once
// File handling shared by every tool: loading TorchScript archives with clear
// errors, and writing outputs atomically (temporary file, then rename).
#include <functional>
#include <string>

#include <torch/script.h>

namespace compress {

// Loads a TorchScript archive onto the CPU. A missing, empty, non-archive or
// truncated file raises Error(BadInput) naming the file and the problem.
torch::jit::Module load_module(const std::string& path);

// Checks that `path` names an existing, readable, non-empty regular file.
void require_input_file(const std::string& path);

// Writes `out_path` by calling `write(tmp_path)` on a temporary file in the
// same folder, then renaming it into place. On any failure the temporary file
// is removed and nothing is left behind. Refuses to overwrite `protect`
// (an input of the job) when given.
void write_atomically(const std::string& out_path,
                      const std::function<void(const std::string& tmp_path)>& write,
                      const std::string& protect = "");

// Saves a module atomically (see write_atomically).
void save_module(const torch::jit::Module& module, const std::string& out_path,
                 const std::string& protect = "");

// Writes text atomically.
void write_text_file(const std::string& out_path, const std::string& text);

}  // namespace compress
