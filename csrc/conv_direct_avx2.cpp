// The AVX2+FMA build of the direct convolution: this file alone is compiled with -mavx2 -mfma, and
// conv.cpp only calls it when the CPU reports both.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <limits>
#include <utility>

#include "conv_direct.h"
#include "gemm_packed.h"

namespace fastdl {
namespace avx2 {
namespace {
struct V {
  using reg = __m256;
  static constexpr int n = 8;
  static constexpr int kRegs = 16;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static void stream(float* p, reg v) { _mm256_stream_ps(p, v); }  // p on a whole vector's boundary
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg fnmadd(reg a, reg b, reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg cell_sigmoid(reg x);  // the recurrent cells' own (below)
  static reg cell_tanh(reg x);
  static void store_n(float* p, reg v, int k) {
    if (k == 8) return _mm256_storeu_ps(p, v);
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(k), lanes), v);
  }
  static void store_step2(float* p, reg v, int k) {  // p[2 * i] = v[i] for i < k
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    for (int i = 0; i < k; ++i) p[2 * i] = t[i];
  }
  // r[i][j] <-> r[j][i]: pairs of rows interleaved, then pairs of pairs, then the 128-bit halves
  static void transpose(reg* r) {
    reg t[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
      t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
    }
    for (int i = 0; i < 8; ++i) r[i] = t[i];
  }
};
#include "simd_math.h"  // this namespace's own copies
#include "conv_direct_kernels.inc"
#include "gemm_packed_kernels.inc"
// The recurrent cells' sigmoid and tanh as in the AVX-512 build, from e = exp(-|x|) and one
// reciprocal, the sign applied after (exp8_nonpos, recip8: 12-bit estimate and a Newton step).
__m256 V::cell_sigmoid(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 e = exp8_nonpos(_mm256_or_ps(x, sign));  // e^{-|x|}
  const __m256 r = recip8(_mm256_add_ps(_mm256_set1_ps(1.0f), e));
  return _mm256_blendv_ps(r, _mm256_mul_ps(r, e), x);  // x < 0 (its sign bit): e / (1 + e)
}
__m256 V::cell_tanh(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  const __m256 e = exp8_nonpos(_mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_or_ps(x, sign)));  // e^{-2|x|}
  const __m256 mag = _mm256_mul_ps(_mm256_sub_ps(one, e), recip8(_mm256_add_ps(one, e)));
  return _mm256_or_ps(mag, _mm256_and_ps(x, sign));
}
}  // namespace
#include "packed_entries.inc"
void direct_conv(const DirectConvArgs& a) { run(a); }
void direct_gw(const DirectGwArgs& a) { gw_run(a); }
void to_pixels(const float* gy, int64_t Kg, int64_t ohw, float* gyT) { to_pixels_impl(gy, Kg, ohw, gyT); }
}  // namespace avx2
}  // namespace fastdl
