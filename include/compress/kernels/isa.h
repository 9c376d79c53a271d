#pragma once
// Run-time choice of the CPU instruction set the kernels use.
// Detection checks CPUID *and* XCR0: a CPU may have AVX-512 while the OS (or a
// hypervisor) does not save the ZMM state, and then the instructions fault.
// COMPRESS_ISA=ref|avx2|avx512vnni|amx forces a choice (tests, bug reports); forcing
// an ISA the machine lacks is refused rather than silently downgraded.
#include <string>

namespace compress::kernels {

// Ordered: a level allows the kernels of every level below it. amx (Intel
// AMX tiles, tdpbusd) reads the same packed layout as avx512vnni, so a model
// packed on either runs at full speed on both.
enum class Isa { ref = 0, avx2 = 1, avx512vnni = 2, amx = 3 };

const char* isa_name(Isa isa);
// Parses "ref" / "avx2" / "avx512vnni" / "amx"; throws compress::Error(BadInput) otherwise.
Isa parse_isa(const std::string& name);
// Whether this CPU and OS can run code built for `isa`.
bool cpu_supports(Isa isa);
// The best ISA this machine supports.
Isa best_isa();
// The ISA the kernels use: COMPRESS_ISA when set (checked), else best_isa().
// Read once; set_active_isa() changes it for the process (tests, benchmarks).
Isa active_isa();
void set_active_isa(Isa isa);
// Whether this build contains the code for `isa` (the AVX-512 VNNI file is
// always compiled with GCC/Clang; kept for ports to compilers that cannot).
bool isa_compiled(Isa isa);

}  // namespace compress::kernels
