// The leaf registry: one entry per kind, registered by src/ir/leaves/<kind>.cpp.
#include "compress/ir/leaf.h"

#include <array>
#include <regex>

#include "compress/error.h"
#include "leaves/names.h"

namespace compress {
namespace {

constexpr size_t kKinds = static_cast<size_t>(LeafKind::Dropout) + 1;

std::array<std::optional<LeafInfo>, kKinds>& table() {
  static std::array<std::optional<LeafInfo>, kKinds> entries;
  return entries;
}

}  // namespace

void register_leaf(LeafInfo info) {
  auto& slot = table().at(static_cast<size_t>(info.kind));
  if (slot) failure(std::string("leaf kind ") + info.name + " is registered twice");
  slot = std::move(info);
}

const LeafInfo& leaf_info(LeafKind kind) {
  const auto& slot = table().at(static_cast<size_t>(kind));
  if (!slot) failure("leaf kind #" + std::to_string(static_cast<int>(kind)) + " has no registry entry");
  return *slot;
}

std::vector<const LeafInfo*> leaf_infos() {
  std::vector<const LeafInfo*> out;
  for (const auto& slot : table())
    if (slot) out.push_back(&*slot);
  return out;
}

std::optional<RecognizedLeaf> recognize_leaf(const torch::jit::Module& module) {
  // Only torch.nn's own classes (whose forward we know) and the ones this
  // toolkit exports; a user's class that happens to be called Linear is not a leaf.
  std::string type_name = detail::unmangled_type_name(module.type());
  static const char* kPrefixes[] = {"__torch__.torch.nn.modules.", "__torch__.compress.nn."};
  bool known_prefix = false;
  for (const char* p : kPrefixes) known_prefix |= type_name.rfind(p, 0) == 0;
  if (!known_prefix || !module.find_method("forward")) return std::nullopt;
  std::string last = type_name.substr(type_name.rfind('.') + 1);
  for (const auto& slot : table()) {
    if (!slot) continue;
    for (const auto& cls : slot->class_names)
      if (cls == last) return slot->recognize(module);
  }
  return std::nullopt;
}

namespace detail {

std::string unmangled_type_name(const c10::ClassTypePtr& type) {
  static const std::regex mangle("___torch_mangle_[0-9]+\\.");
  return std::regex_replace(type->name()->qualifiedName(), mangle, "");
}

std::string default_leaf_type_name(LeafKind kind) {
  return std::string("__torch__.compress.nn.") + leaf_kind_name(kind);
}

}  // namespace detail
}  // namespace compress
