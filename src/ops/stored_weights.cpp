// Weights in their storage form (kernels::Layout::stored_s8 / stored_u7_s8):
// what save_module writes (packed_weight_for_storage) and the packing the ops
// run them with (runnable_blob, packed_weight_for_cpu).
//
// A saved model keeps each dense and depthwise weight row-major, without the
// kernel layouts' padding (n to 16 or 32 columns, k to 4 or 8) and
// compensation, so the file is smaller and does not depend on the CPU that
// quantized it. At the first call of a loaded model each stored weight is
// packed for this CPU's kernels, once, and the packing kept in a table keyed
// by the stored bytes' storage: a model quantized on an AVX-512 VNNI machine
// runs the AVX2 kernels on an AVX2 one (a VNNI packing there would run the
// reference kernel).
#include <c10/util/intrusive_ptr.h>

#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "compress/kernels/isa.h"
#include "compress/ops/ops.h"
#include "compress/ops/script.h"
#include "internal.h"

namespace compress::ops {
namespace detail {
namespace {

// The stored bytes a repacking was made from: their storage (the saved
// model's buffers share one storage, at different offsets), where in it they
// start, and the ISA packed for (tests switch it within a process).
struct Key {
  const c10::StorageImpl* storage;
  int64_t offset;
  K::Isa isa;
  bool operator<(const Key& o) const {
    return std::tie(storage, offset, isa) < std::tie(o.storage, o.offset, o.isa);
  }
};

struct Entry {
  // Expired once the stored bytes' storage is freed: the address may then
  // be reused by other bytes, so the entry no longer says anything.
  c10::weak_intrusive_ptr<c10::StorageImpl> storage;
  uint32_t version;  // the stored tensor's version counter when packed
  at::Tensor blob;   // the packing for `isa`
};

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

std::map<Key, Entry>& table() {
  static std::map<Key, Entry> t;
  return t;
}

// Drops the entries whose stored bytes are gone (the caller holds the mutex).
void sweep(std::map<Key, Entry>& t) {
  for (auto it = t.begin(); it != t.end();) it = it->second.storage.expired() ? t.erase(it) : std::next(it);
}

// The header's first fields, or false when the tensor cannot hold a blob.
bool read_header_start(const at::Tensor& packed, int64_t (&header)[K::kLayout + 1]) {
  if (!packed.defined() || !packed.device().is_cpu() || packed.scalar_type() != at::kByte || packed.dim() != 1 ||
      !packed.is_contiguous() || packed.numel() < K::kHeaderBytes)
    return false;  // view_of reports what is wrong with it
  std::memcpy(header, packed.data_ptr<uint8_t>(), sizeof(header));
  return header[K::kMagic] == K::kPackedMagic;
}

bool is_stored_blob(const at::Tensor& packed) {
  int64_t header[K::kLayout + 1];
  return read_header_start(packed, header) && header[K::kLayout] >= 0 &&
         K::is_storage_layout(static_cast<K::Layout>(header[K::kLayout]));
}

// A stored blob packed for `isa`'s kernels; errors name `op`.
at::Tensor packed_for(const char* op, const at::Tensor& stored, K::Isa isa) {
  const K::PackedView v = view_of(op, stored);
  return guarded(op, [&] { return blob_tensor(K::from_stored(v, isa)); });
}

}  // namespace

at::Tensor runnable_blob(const char* op, const at::Tensor& packed) {
  if (!is_stored_blob(packed)) return packed;
  const K::Isa isa = K::active_isa();
  const Key key{packed.storage().unsafeGetStorageImpl(), packed.storage_offset(), isa};
  const uint32_t version = packed.unsafeGetTensorImpl()->version_counter().current_version();
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(key);
    if (it != table().end() && !it->second.storage.expired() && it->second.version == version)
      return it->second.blob;
  }
  // Packed outside the lock (a large layer takes milliseconds); two threads
  // meeting here pack the same bytes twice and keep one.
  at::Tensor blob = packed_for(op, packed, isa);
  std::lock_guard<std::mutex> lock(table_mutex());
  sweep(table());
  table().insert_or_assign(key, Entry{packed.storage().getWeakStorageImpl(), version, blob});
  return blob;
}

}  // namespace detail

namespace K = compress::kernels;

at::Tensor packed_weight_for_storage(const at::Tensor& packed_weight) {
  const char* op = "compress::packed_weight_for_storage";
  const K::PackedView w = detail::view_of(op, packed_weight);
  return detail::guarded(op, [&] {
    return K::storable(w) ? detail::blob_tensor(K::to_stored(w)) : packed_weight;
  });
}

bool is_packed_weight(const at::Tensor& tensor) {
  int64_t header[K::kLayout + 1];
  return detail::read_header_start(tensor, header);
}

at::Tensor packed_weight_for_cpu(const at::Tensor& packed_weight) {
  const char* op = "compress::packed_weight_for_cpu";
  return detail::is_stored_blob(packed_weight) ? detail::packed_for(op, packed_weight, K::active_isa()) : packed_weight;
}

int64_t pack_stored_weights(torch::jit::Module& module) {
  int64_t replaced = 0;
  for (const auto& sub : module.modules()) {
    for (const auto& b : sub.named_buffers(/*recurse=*/false)) {
      if (!detail::is_stored_blob(b.value)) continue;
      torch::jit::Module owner = sub;
      owner.setattr(b.name, packed_weight_for_cpu(b.value));
      ++replaced;
    }
  }
  return replaced;
}

int64_t repacked_weights_cached() {
  std::lock_guard<std::mutex> lock(detail::table_mutex());
  detail::sweep(detail::table());
  return static_cast<int64_t>(detail::table().size());
}

}  // namespace compress::ops
