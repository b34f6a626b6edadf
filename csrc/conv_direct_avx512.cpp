// The AVX-512 build of the direct convolution: this file alone is compiled with -mavx512f, and
// conv.cpp only calls it when the CPU reports AVX-512F.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <stdexcept>
#include <vector>

#include "common.h"
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
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg fnmadd(reg a, reg b, reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg cell_sigmoid(reg x);  // the recurrent cells' own (below)
  static reg cell_tanh(reg x);
  static reg load_n(const float* p, int k) { return _mm512_maskz_loadu_ps(__mmask16((1u << k) - 1), p); }  // zero past k
  static void copy_n(float* d, const float* s, int k) { _mm512_mask_storeu_ps(d, __mmask16((1u << k) - 1), load_n(s, k)); }
  static constexpr int64_t gemm_kc = 384, gemm_mc = 48, gemm_nc = 512;  // the packed GEMM's blocks of K, C's rows, C's columns
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

// simd_math.h's vector math: this namespace's own copies
#include "simd_math.h"
#include "conv_direct_kernels.inc"
#include "gemm_packed_kernels.inc"
}  // namespace
namespace {
// The recurrent cells' own sigmoid and tanh, from e = exp(-|x|) (exp16_nonpos: the shifter and a
// degree-5 polynomial, 1.8e-7 relative) and one reciprocal, the sign applied after: about 20
// operations each, where the general sigmoid16 and tanh16 take about 24 and 38 (tanh16 blends in a
// polynomial for small arguments).  Both stay within 2.5e-7 absolute of float64, measured over
// [-30, 30]; tanh's small arguments lose relative accuracy in 1 - e^{-2|x|} (1e-5 relative at
// tanh = 1e-3, 1e-2 at 1e-6), below the absolute error the pre-activation's own sum of products
// carries.  A NaN stays NaN.  LSTM T=100 B=64 256->512 forward 146 -> 138 ms, T=50 10.2 -> 9.6 ms.
__m512 V::cell_sigmoid(__m512 x) {
  const __m512 e = exp16_nonpos(neg16(abs16(x)));  // e^{-|x|}
  const __m512 r = recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
  return _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), r, e);  // x < 0: e / (1 + e)
}
__m512 V::cell_tanh(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = exp16_nonpos(_mm512_mul_ps(_mm512_set1_ps(-2.0f), abs16(x)));  // e^{-2|x|}
  return with_sign16(_mm512_mul_ps(_mm512_sub_ps(one, e), recip16(_mm512_add_ps(one, e))), x);
}
}  // namespace

#define FASTDL_PACKED_GEMM  // the packed GEMM too (gemm.cpp routes float products to it)
#include "packed_entries.inc"
#undef FASTDL_PACKED_GEMM
void direct_conv(const DirectConvArgs& a) { run(a); }
void direct_gw(const DirectGwArgs& a) { gw_run(a); }
void to_pixels(const float* gy, int64_t Kg, int64_t ohw, float* gyT) { to_pixels_impl(gy, Kg, ohw, gyT); }
}  // namespace avx512
}  // namespace fastdl
