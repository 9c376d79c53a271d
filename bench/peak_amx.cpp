// The AMX tile unit's int8 throughput on one core: tdpbusd into four
// independent accumulator tiles, operands loaded from L1 each k-step as in
// gemm_u8s8s32_amx_32x32 (2 x 2 tiles). Compiled with the AMX flags (this
// file only); called only where cpu_supports(Isa::amx), which has already
// asked Linux for the tile data permission.
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstring>

namespace bench {

double measure_amx_macs_per_s() {
  struct alignas(64) Config {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
  } cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  alignas(64) static uint8_t a[32][9 * 64];
  alignas(64) static int8_t b[9 * 16][128];
  alignas(64) static int32_t c[32][32];
  std::memset(a, 1, sizeof(a));
  std::memset(b, 1, sizeof(b));
  _tile_loadconfig(&cfg);
  const int64_t items = 200000, kblocks = 9;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < items; ++it) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t kb = 0; kb < kblocks; ++kb) {
      _tile_loadd(4, &a[0][kb * 64], sizeof(a[0]));
      _tile_loadd(5, &a[16][kb * 64], sizeof(a[0]));
      _tile_loadd(6, &b[kb * 16][0], 128);
      _tile_loadd(7, &b[kb * 16][64], 128);
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, &c[0][0], 128);
    _tile_stored(1, &c[0][16], 128);
    _tile_stored(2, &c[16][0], 128);
    _tile_stored(3, &c[16][16], 128);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  _tile_release();
  return static_cast<double>(items) * kblocks * 4 * 16 * 16 * 64 / s * (c[0][0] == 64 * kblocks ? 1 : 0);
}

}  // namespace bench
