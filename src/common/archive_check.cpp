#include "compress/archive_check.h"

#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "compress/error.h"

namespace compress {

namespace {

// How an opcode's argument is laid out in the stream.
enum class Arg {
  None,      // no argument
  Fixed,     // `width` bytes
  Counted,   // a little-endian length of `width` bytes, then that many bytes
  Line,      // text up to a newline
  TwoLines,  // two such lines (GLOBAL, INST: module and name)
  Unknown,   // not a pickle opcode
};

struct Layout {
  Arg arg;
  int width;
};

Layout layout(uint8_t op) {
  switch (op) {
    // Protocol 0 and 1.
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'Q': case 'R': case 'a': case 'b':
    case 'd': case '}': case 'e': case 'l': case ']': case 'o': case 's': case 't': case ')': case 'u':
      return {Arg::None, 0};
    case 'K': case 'h': case 'q': return {Arg::Fixed, 1};
    case 'M': return {Arg::Fixed, 2};
    case 'J': case 'j': case 'r': return {Arg::Fixed, 4};
    case 'G': return {Arg::Fixed, 8};
    case 'F': case 'I': case 'L': case 'P': case 'S': case 'V': case 'g': case 'p': return {Arg::Line, 0};
    case 'c': case 'i': return {Arg::TwoLines, 0};
    case 'U': case 'C': return {Arg::Counted, 1};  // SHORT_BINSTRING, SHORT_BINBYTES
    case 'T': case 'X': case 'B': return {Arg::Counted, 4};  // BINSTRING, BINUNICODE, BINBYTES
    // Protocol 2.
    case 0x80: case 0x82: return {Arg::Fixed, 1};  // PROTO, EXT1
    case 0x83: return {Arg::Fixed, 2};              // EXT2
    case 0x84: return {Arg::Fixed, 4};              // EXT4
    case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: return {Arg::None, 0};
    case 0x8a: return {Arg::Counted, 1};  // LONG1
    case 0x8b: return {Arg::Counted, 4};  // LONG4
    // Protocol 4.
    case 0x8c: return {Arg::Counted, 1};             // SHORT_BINUNICODE
    case 0x8d: case 0x8e: return {Arg::Counted, 8};  // BINUNICODE8, BINBYTES8
    case 0x8f: case 0x90: case 0x91: case 0x92: case 0x93: case 0x94: return {Arg::None, 0};
    case 0x95: return {Arg::Fixed, 8};  // FRAME
    // Protocol 5.
    case 0x96: return {Arg::Counted, 8};  // BYTEARRAY8
    case 0x97: case 0x98: return {Arg::None, 0};
    default: return {Arg::Unknown, 0};
  }
}

std::string prefix(const std::string& what) { return what.empty() ? "" : what + ": "; }

uint64_t little_endian(const unsigned char* p, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

void check_pickle(const char* data, size_t size, const std::string& what) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  size_t at = 0;
  auto refuse = [&](size_t op_at, const std::string& problem) {
    bad_input(prefix(what) + problem + " (pickle opcode at byte " + std::to_string(op_at) + " of " +
              std::to_string(size) + ")");
  };
  auto skip_line = [&](size_t op_at) {
    const void* nl = std::memchr(p + at, '\n', size - at);
    if (nl == nullptr) refuse(op_at, "a text argument runs past the end of the record");
    at = size_t(static_cast<const unsigned char*>(nl) - p) + 1;
  };
  while (at < size) {
    const size_t op_at = at;
    const uint8_t op = p[at++];
    if (op == '.') return;  // STOP: what follows is not read
    const Layout l = layout(op);
    switch (l.arg) {
      case Arg::None:
        break;
      case Arg::Fixed:
        if (size - at < size_t(l.width)) refuse(op_at, "an argument runs past the end of the record");
        at += size_t(l.width);
        break;
      case Arg::Counted: {
        if (size - at < size_t(l.width)) refuse(op_at, "a length field runs past the end of the record");
        uint64_t n = little_endian(p + at, l.width);
        at += size_t(l.width);
        // BINSTRING and LONG4 lengths are signed: a negative one is as bad as a huge one.
        if ((op == 'T' || op == 0x8b) && (n & 0x80000000u)) n = UINT64_MAX;
        if (n > size - at) {
          refuse(op_at, "a length field says " + std::to_string(n) + " bytes, only " + std::to_string(size - at) +
                            " remain");
        }
        at += size_t(n);
        break;
      }
      case Arg::Line:
        skip_line(op_at);
        break;
      case Arg::TwoLines:
        skip_line(op_at);
        skip_line(op_at);
        break;
      case Arg::Unknown: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        refuse(op_at, std::string("unknown pickle opcode ") + hex);
      }
    }
  }
  bad_input(prefix(what) + "a pickle record ends without its STOP opcode");
}

void check_archive_pickles(caffe2::serialize::PyTorchStreamReader& reader, const std::string& what) {
  for (const std::string& name : reader.getAllRecords()) {
    // data.pkl, constants.pkl, and the code's debug_pkl (unpickled when a source range is shown).
    if (name.size() < 3 || name.compare(name.size() - 3, 3, "pkl") != 0) continue;
    at::DataPtr bytes;
    size_t size = 0;
    std::tie(bytes, size) = reader.getRecord(name);
    check_pickle(static_cast<const char*>(bytes.get()), size, prefix(what) + "record " + name);
  }
}

}  // namespace compress
