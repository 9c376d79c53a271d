#include "compress/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "compress/error.h"

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
    return torch::jit::load(path, c10::Device(c10::kCPU));
  } catch (const std::exception& e) {
    bad_input(path + ": cannot load TorchScript model: " + first_line_of(e));
  }
}

static bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (!fs::exists(a, ec) || !fs::exists(b, ec)) {
    return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
  }
  return fs::equivalent(a, b, ec);
}

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

  std::random_device rd;
  std::string tmp = (dir / ("." + out.filename().string() + ".tmp" + std::to_string(::getpid()) +
                            "_" + std::to_string(rd())))
                        .string();
  try {
    write(tmp);
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
}

void save_module(const torch::jit::Module& module, const std::string& out_path,
                 const std::string& protect) {
  write_atomically(
      out_path,
      [&](const std::string& tmp) {
        try {
          module.save(tmp);
        } catch (const std::exception& e) {
          failure(out_path + ": cannot save model: " + first_line_of(e));
        }
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
