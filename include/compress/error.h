#pragma once
// One exception type for the whole toolkit. Every throw names what went wrong
// and where (file, node, parameter, field); the CLI prints what() as one line.
#include <stdexcept>
#include <string>
#include <vector>

namespace compress {

enum class ErrorKind {
  BadInput,  // the user's input is wrong (file, model, option): CLI exit code 2
  Failure,   // the job itself failed (I/O error, a kernel declined): exit code 1
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, bool said_elsewhere = false)
      : std::runtime_error(message), kind_(kind), said_elsewhere_(said_elsewhere) {}
  ErrorKind kind() const { return kind_; }
  // Another process of the same job (rank 0 of a data-parallel run) has
  // printed the reason already: the CLI exits with the kind's code, silently.
  bool said_elsewhere() const { return said_elsewhere_; }

 private:
  ErrorKind kind_;
  bool said_elsewhere_;
};

// Throws Error(BadInput, message): for what a user can get wrong.
[[noreturn]] void bad_input(const std::string& message);
// Throws Error(Failure, message).
[[noreturn]] void failure(const std::string& message);
// Throws Error(kind, message) marked said_elsewhere().
[[noreturn]] void said_elsewhere(ErrorKind kind, const std::string& message);

// The first line of a LibTorch / c10 error message, without its C++ backtrace,
// so that it can be shown to a user inside one line of our own.
std::string first_line_of(const std::exception& e);

// The candidate closest to `name` by edit distance ("" when there is none),
// for "did you mean ...?" in messages about misspelt names.
std::string closest_name(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace compress
