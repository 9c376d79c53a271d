// CPUID + XCR0 detection and the COMPRESS_ISA override.
#include "compress/kernels/isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "compress/error.h"

namespace compress::kernels {
namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  // xgetbv with ecx = 0; only valid when CPUID says OSXSAVE.
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

struct Features {
  bool avx2 = false;
  bool avx512vnni = false;
  bool amx = false;
};

// Linux hands out the AMX tile data state (XFEATURE 18, 8 KB per thread) only
// to a process that asks: without this, the first tile instruction faults.
// The permission is process-wide and covers threads started later too.
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  const bool fma = c & (1u << 12);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;      // SSE + AVX state saved by the OS
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;    // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16);
  const bool avx512bw = b & (1u << 30);
  const bool avx512vl = b & (1u << 31);
  const bool avx512vnni = c & (1u << 11);
  f.avx2 = avx2 && fma && ymm_state;
  f.avx512vnni = f.avx2 && avx512f && avx512bw && avx512vl && avx512vnni && zmm_state;
  const bool amx_tile = d & (1u << 24), amx_int8 = d & (1u << 25);
  const bool tile_state = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA enabled by the OS
  f.amx = f.avx512vnni && amx_tile && amx_int8 && tile_state && request_amx_permission();
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

Isa initial_isa() {
  const char* env = std::getenv("COMPRESS_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  Isa isa = parse_isa(env);
  if (!cpu_supports(isa))
    bad_input(std::string("COMPRESS_ISA=") + env + ": this CPU (or its OS) does not support it");
  return isa;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::ref: return "ref";
    case Isa::avx2: return "avx2";
    case Isa::avx512vnni: return "avx512vnni";
    case Isa::amx: return "amx";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  if (name == "ref") return Isa::ref;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512vnni") return Isa::avx512vnni;
  if (name == "amx") return Isa::amx;
  bad_input("unknown ISA '" + name + "' (expected ref, avx2, avx512vnni or amx)");
}

bool isa_compiled(Isa isa) {
#if defined(__x86_64__)
  (void)isa;
  return true;
#else
  return isa == Isa::ref;
#endif
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::ref: return true;
    case Isa::avx2: return features().avx2;
    case Isa::avx512vnni: return features().avx512vnni;
    case Isa::amx: return features().amx;
  }
  return false;
}

Isa best_isa() {
  if (cpu_supports(Isa::amx)) return Isa::amx;
  if (cpu_supports(Isa::avx512vnni)) return Isa::avx512vnni;
  if (cpu_supports(Isa::avx2)) return Isa::avx2;
  return Isa::ref;
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (!cpu_supports(isa))
    bad_input(std::string("ISA ") + isa_name(isa) + " is not supported by this CPU");
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace compress::kernels
