#include "compress/archive_check.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/script.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <vector>
#include <unordered_set>

#include "compress/error.h"
#include "record_name.h"

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

// A value the storage-reference check follows through the pickle.
struct Value {
  enum Kind { Other, Mark, Tuple, Text, Int, Global } kind = Other;
  std::string text;
  int64_t number = 0;
};

// Bytes per element of a LibTorch storage type ("torch FloatStorage"); 0 when unknown.
int64_t storage_item_size(const std::string& global) {
  static const std::unordered_map<std::string, int64_t> sizes = {
      {"Float", 4}, {"Double", 8}, {"Half", 2}, {"BFloat16", 2}, {"Long", 8}, {"Int", 4}, {"Short", 2},
      {"Char", 1}, {"Byte", 1}, {"Bool", 1}, {"ComplexFloat", 8}, {"ComplexDouble", 16}, {"QInt8", 1},
      {"QUInt8", 1}, {"QInt32", 4}, {"QUInt4x2", 1}, {"QUInt2x4", 1}};
  const std::string head = "torch ", tail = "Storage ";
  if (global.size() <= head.size() + tail.size() || global.compare(0, head.size(), head) != 0 ||
      global.compare(global.size() - tail.size(), tail.size(), tail) != 0)
    return 0;
  auto it = sizes.find(global.substr(head.size(), global.size() - head.size() - tail.size()));
  return it == sizes.end() ? 0 : it->second;
}

std::string prefix(const std::string& what) { return what.empty() ? "" : what + ": "; }

uint64_t little_endian(const unsigned char* p, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Walks an IValue, checking every tensor in it (objects are visited once).
class TensorWalker {
 public:
  explicit TensorWalker(std::string file) : file_(std::move(file)) {}

  void walk(const c10::IValue& v, const std::string& name) {
    if (v.isTensor()) {
      check_tensor_storage(v.toTensor(), file_ + ": tensor '" + name + "'");
    } else if (v.isObject()) {
      const auto obj = v.toObject();
      if (!seen_.insert(obj.get()).second) return;
      const auto type = obj->type();
      for (size_t i = 0; i < obj->slots().size() && i < type->numAttributes(); ++i)
        walk(obj->getSlot(i), join(name, type->getAttributeName(i)));
    } else if (v.isList()) {
      const auto list = v.toListRef();
      for (size_t i = 0; i < list.size(); ++i) walk(list[i], name + "[" + std::to_string(i) + "]");
    } else if (v.isTuple()) {
      const auto& items = v.toTupleRef().elements();
      for (size_t i = 0; i < items.size(); ++i) walk(items[i], name + "[" + std::to_string(i) + "]");
    } else if (v.isGenericDict()) {
      for (const auto& kv : v.toGenericDict()) {
        walk(kv.key(), name + "{key}");
        walk(kv.value(), name + "[" + (kv.key().isString() ? kv.key().toStringRef() : "?") + "]");
      }
    }
  }

  void walk(const torch::jit::Block* block, const std::string& method) {
    for (const torch::jit::Node* node : block->nodes()) {
      if (node->kind() == c10::prim::Constant && node->hasAttribute(c10::attr::value) &&
          node->kindOf(c10::attr::value) == torch::jit::AttributeKind::t)
        check_tensor_storage(node->t(c10::attr::value), file_ + ": a tensor constant of " + method);
      for (const torch::jit::Block* sub : node->blocks()) walk(sub, method);
    }
  }

 private:
  static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }
  std::string file_;
  std::unordered_set<const void*> seen_;
};

}  // namespace

void check_tensor_storage(const at::Tensor& t, const std::string& what) {
  if (!t.defined() || t.layout() != at::kStrided || !t.has_storage() || t.numel() == 0) return;
  // The last element's index (in elements from the storage's start), without overflow.
  int64_t last = t.storage_offset();
  bool ok = last >= 0;
  for (int64_t d = 0; ok && d < t.dim(); ++d) {
    int64_t step = 0;
    ok = t.stride(d) >= 0 && !__builtin_mul_overflow(t.size(d) - 1, t.stride(d), &step) &&
         !__builtin_add_overflow(last, step, &last);
  }
  int64_t need = 0;
  ok = ok && !__builtin_mul_overflow(last + 1, int64_t(t.element_size()), &need);
  const int64_t have = int64_t(t.storage().nbytes());
  if (!ok || need > have) {
    bad_input(what + " of shape " + c10::str(t.sizes()) + ", strides " + c10::str(t.strides()) + " and offset " +
              std::to_string(t.storage_offset()) + " reaches past its storage of " + std::to_string(have) +
              " bytes");
  }
}

void check_module_tensors(const torch::jit::Module& module, const std::string& file) {
  TensorWalker walker(file);
  walker.walk(module._ivalue(), "");
  for (const auto& sub : module.modules())
    for (const auto& method : sub.get_methods()) walker.walk(method.graph()->block(), method.name());
}

void check_pickle(const char* data, size_t size, const std::string& what, std::vector<StorageRef>* storages) {
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
  // For the storage references: the last values pushed, and the memo of
  // literal values (what BINGET can bring back).
  std::vector<Value> recent;
  std::unordered_map<uint64_t, Value> memo;
  uint64_t puts = 0;  // one more than the largest memo index stored
  while (at < size) {
    const size_t op_at = at;
    const uint8_t op = p[at++];
    if (op == '.') return;  // STOP: what follows is not read
    const Layout l = layout(op);
    const size_t arg_at = at;
    uint64_t arg = 0;  // a Fixed argument or a Counted length
    switch (l.arg) {
      case Arg::None:
        break;
      case Arg::Fixed:
        if (size - at < size_t(l.width)) refuse(op_at, "an argument runs past the end of the record");
        arg = l.width <= 8 ? little_endian(p + at, l.width) : 0;
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
        arg = n;
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
    // LibTorch's unpickler keeps its memo in a vector indexed by the id, so
    // a BINPUT of a huge id resizes it to that (fuzz_checkpoint: 31 GB).
    // Ids are numbered from 0 as values are stored: one larger than the
    // record, or a read of one never stored, is no pickle LibTorch wrote.
    if (op == 'q' || op == 'r') {
      if (arg > size) refuse(op_at, "a memo index " + std::to_string(arg) + " larger than the record");
      puts = std::max(puts, arg + 1);
    } else if ((op == 'h' || op == 'j') && arg >= puts) {
      refuse(op_at, "a memo read of index " + std::to_string(arg) + ", never stored");
    }
    if (storages == nullptr) continue;
    Value v;
    switch (op) {
      case '(': v.kind = Value::Mark; break;
      case 't': v.kind = Value::Tuple; break;
      case 'X': case 0x8c: case 0x8d:
        v.kind = Value::Text;
        v.text.assign(reinterpret_cast<const char*>(p + at - arg), size_t(arg));
        break;
      case 'K': case 'M': v.kind = Value::Int; v.number = int64_t(arg); break;
      case 'J': v.kind = Value::Int; v.number = int64_t(int32_t(uint32_t(arg))); break;
      case 'c': {  // GLOBAL "module\nname\n"
        v.kind = Value::Global;
        v.text.assign(reinterpret_cast<const char*>(p + arg_at), at - arg_at);
        std::replace(v.text.begin(), v.text.end(), '\n', ' ');
        break;
      }
      case 'q': case 'r':  // BINPUT: the top of the stack, kept
        if (!recent.empty()) memo[arg] = recent.back();
        continue;
      case 'h': case 'j': {  // BINGET
        auto it = memo.find(arg);
        if (it != memo.end()) v = it->second;
        break;
      }
      case 'Q': {
        // What LibTorch's pickler writes: MARK, 'storage', GLOBAL torch
        // <Type>Storage, key, location, numel, TUPLE, BINPERSID.
        const size_t n = recent.size();
        const bool canonical = n >= 7 && recent[n - 7].kind == Value::Mark && recent[n - 6].kind == Value::Text &&
                               recent[n - 6].text == "storage" && recent[n - 5].kind == Value::Global &&
                               recent[n - 4].kind == Value::Text && recent[n - 3].kind == Value::Text &&
                               recent[n - 2].kind == Value::Int && recent[n - 1].kind == Value::Tuple;
        if (!canonical) refuse(op_at, "a tensor storage reference not in the form LibTorch writes");
        const int64_t item = storage_item_size(recent[n - 5].text);
        const int64_t numel = recent[n - 2].number;
        if (item == 0) refuse(op_at, "unknown tensor storage type '" + recent[n - 5].text + "'");
        if (numel < 0 || numel > (int64_t(1) << 56)) refuse(op_at, "a storage of " + std::to_string(numel) + " elements");
        storages->push_back({recent[n - 4].text, uint64_t(numel) * uint64_t(item)});
        break;
      }
      default: break;
    }
    recent.push_back(std::move(v));
    if (recent.size() > 16) recent.erase(recent.begin());
  }
  bad_input(prefix(what) + "a pickle record ends without its STOP opcode");
}

using detail::record_key;

void check_archive_pickles(caffe2::serialize::PyTorchStreamReader& reader, const std::vector<ZipEntry>& entries,
                           const std::string& what) {
  // The reader's record names drop the archive's top folder ("archive/"),
  // and its lookups ignore case (miniz's default): "data.pkL" is read as
  // data.pkl (found by fuzz_dataset), so names are compared in lower case
  // (check_zip refuses two names that differ only in case).
  std::unordered_map<std::string, uint64_t> record_size;
  for (const ZipEntry& e : entries) {
    const size_t slash = e.name.find('/');
    record_size[record_key(slash == std::string::npos ? e.name : e.name.substr(slash + 1))] = e.size;
  }
  for (const std::string& name : reader.getAllRecords()) {
    // data.pkl, constants.pkl, and the code's debug_pkl (unpickled when a source range is shown).
    if (name.size() < 3 || record_key(name.substr(name.size() - 3)) != "pkl") continue;
    std::vector<StorageRef> storages;
    {
      at::DataPtr bytes;
      size_t size = 0;
      std::tie(bytes, size) = reader.getRecord(name);
      check_pickle(static_cast<const char*>(bytes.get()), size, prefix(what) + "record " + name, &storages);
    }
    // The unpickler sizes each storage by the numel in its reference, over a
    // buffer of the record's size: the record must hold what is claimed.
    // (The tensors of X.pkl live in X/: data/0, constants/3.)
    const std::string dir = name.substr(0, name.size() - 4) + "/";
    for (const StorageRef& s : storages) {
      const std::string record = dir + s.key;
      const auto it = record_size.find(record_key(record));
      if (it == record_size.end() || !reader.hasRecord(record))
        bad_input(prefix(what) + "record " + name + ": storage '" + s.key + "' has no record " + record);
      if (s.bytes > it->second) {
        bad_input(prefix(what) + "record " + name + ": storage '" + s.key + "' claims " + std::to_string(s.bytes) +
                  " bytes, its record " + record + " holds " + std::to_string(it->second));
      }
    }
  }
}

namespace {

// LibTorch's memory reader copies whatever a corrupt zip offset asks for (a
// heap overflow found by fuzz_checkpoint): this one gives back only bytes
// that exist, and the zip reader reports the short read as an error.
class BoundedReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(const std::vector<char>& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char*) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - size_t(pos));
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::vector<char>& bytes_;
};

}  // namespace

void check_archive_code(caffe2::serialize::PyTorchStreamReader& reader, const std::string& what) {
  static const std::unordered_set<std::string> kWrittenByLibTorch{"__parameters__", "__buffers__",
                                                                   "__forward_hooks__", "__forward_pre_hooks__"};
  auto is_ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (const std::string& name : reader.getAllRecords()) {
    if (name.size() < 3 || record_key(name.substr(name.size() - 3)) != ".py") continue;
    at::DataPtr bytes;
    size_t size = 0;
    std::tie(bytes, size) = reader.getRecord(name);
    const std::string src(static_cast<const char*>(bytes.get()), size);
    std::string class_name, body_indent;  // the class whose body is being read, and its indentation
    bool want_indent = false;
    size_t line_start = 0;
    while (line_start < src.size()) {
      size_t line_end = src.find('\n', line_start);
      if (line_end == std::string::npos) line_end = src.size();
      const std::string line = src.substr(line_start, line_end - line_start);
      line_start = line_end + 1;
      const size_t text = line.find_first_not_of(" \t\r\f");
      if (text == std::string::npos || line[text] == '#') continue;  // blank or comment
      const std::string indent = line.substr(0, text);
      if (indent.empty()) {
        // A top-level statement: a class opens a body, anything else ends one.
        class_name.clear();
        want_indent = false;
        if (line.compare(0, 6, "class ") == 0) {
          size_t e = 6;
          while (e < line.size() && is_ident(line[e])) ++e;
          class_name = line.substr(6, e - 6);
          want_indent = true;
        }
        continue;
      }
      if (class_name.empty()) continue;
      if (want_indent) {
        body_indent = indent;  // the body's first statement sets its indentation
        want_indent = false;
      }
      if (indent != body_indent) continue;  // inside a method (or a continuation)
      size_t e = text;
      while (e < line.size() && is_ident(line[e])) ++e;
      if (e == text) continue;
      const std::string target = line.substr(text, e - text);
      const size_t op = line.find_first_not_of(" \t", e);
      if (op == std::string::npos) continue;
      const bool assigns = line[op] == '=' && (op + 1 >= line.size() || line[op + 1] != '=');
      const bool continued = line[op] == '\\';  // `name \` + a new line: where the = would follow
      if ((assigns || continued) && !kWrittenByLibTorch.count(target))
        bad_input(prefix(what) + "record " + name + ": class " + class_name + " assigns '" + target +
                  "' without a type annotation (LibTorch's compiler crashes on it); the archive is damaged or crafted");
    }
  }
}

c10::IValue load_checked_pickle(const std::vector<char>& bytes, const std::string& what) {
  auto in = std::make_shared<BoundedReader>(bytes);
  const std::vector<ZipEntry> entries = check_zip(*in, what);
  caffe2::serialize::PyTorchStreamReader reader(in);
  check_archive_pickles(reader, entries, what);
  return torch::jit::readArchiveAndTensors("data", "", "", c10::nullopt, c10::nullopt, c10::nullopt, reader);
}

}  // namespace compress
