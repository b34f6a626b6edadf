// The AVX2+FMA build of the direct convolution: this file alone is compiled with -mavx2 -mfma, and
// conv.cpp only calls it when the CPU reports both.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "conv_direct.h"

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
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
};
#include "conv_direct_kernels.inc"
}  // namespace
void direct_conv(const DirectConvArgs& a) { run(a); }
}  // namespace avx2
}  // namespace fastdl
