#pragma once
// Every command parses its arguments through parse_args, so a word that no
// option or positional argument takes is an error, not silently dropped.
// The case it exists for: cxxopts reads a bare switch as true, so
// `--flip false` meant flips ON with "false" left over; now it is refused
// with the spelling that works (`--flip=false`).
#include <string>

#include <cxxopts.hpp>

#include "compress/error.h"

namespace compress::cli {

inline cxxopts::ParseResult parse_args(cxxopts::Options& options, int argc, char** argv) {
  cxxopts::ParseResult r = options.parse(argc, argv);
  if (!r.unmatched().empty()) {
    const std::string& word = r.unmatched().front();
    if (word == "true" || word == "false")
      bad_input("unexpected argument '" + word + "': a switch takes a value only after '=' (e.g. --flip=" + word + ")");
    bad_input("unexpected argument '" + word + "'");
  }
  return r;
}

}  // namespace compress::cli
