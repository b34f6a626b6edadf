// The AVX-512 build of the direct convolution: this file alone is compiled with -mavx512f, and
// conv.cpp only calls it when the CPU reports AVX-512F.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "conv_direct.h"
#include "gemm_packed.h"

// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 shuffle
// wrappers as "maybe uninitialized" once they are inlined; nothing of ours is.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fastdl {
namespace avx512 {
namespace {
struct V {
  using reg = __m512;
  static constexpr int n = 16;
  static constexpr int kRegs = 32;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static void store_n(float* p, reg v, int k) { _mm512_mask_storeu_ps(p, __mmask16((1u << k) - 1), v); }
  // p[2 * i] = v[i] for i < k, the odd places untouched: each half spread to the even lanes
  static void store_step2(float* p, reg v, int k) {
    const int lo = std::min(k, 8), hi = k - lo;
    _mm512_mask_storeu_ps(p, __mmask16(((1u << (2 * lo)) - 1) & 0x5555u), _mm512_maskz_expand_ps(0x5555, v));
    if (hi > 0)
      _mm512_mask_storeu_ps(p + 16, __mmask16(((1u << (2 * hi)) - 1) & 0x5555u),
                            _mm512_maskz_expand_ps(0x5555, _mm512_shuffle_f32x4(v, v, 0xEE)));
  }
  // r[i][j] <-> r[j][i]: pairs of rows interleaved, then pairs of pairs, then 128-bit lanes twice
  static void transpose(reg* r) {
    reg t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
      t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
      t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
      t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 8; ++i) {
      r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
      r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
  }
};
#include "conv_direct_kernels.inc"
#include "gemm_packed_kernels.inc"
}  // namespace
void direct_conv(const DirectConvArgs& a) { run(a); }
void direct_gw(const DirectGwArgs& a) { gw_run(a); }
void to_pixels(const float* gy, int64_t Kg, int64_t ohw, float* gyT) { to_pixels_impl(gy, Kg, ohw, gyT); }
void packed_tile(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv, int mr,
                 int nv) {
  packed_tile_run<true>(A, lda, Bp, K, C, ldc, ldv, mr, nv);
}
void packed_tile_set(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv,
                     int mr, int nv) {
  packed_tile_run<false>(A, lda, Bp, K, C, ldc, ldv, mr, nv);
}
int packed_rows(int nv) { return packed_rows_of(nv); }
double fma_peak(int64_t iters) { return fma_peak_run(iters); }
}  // namespace avx512
}  // namespace fastdl
