// The AVX-512 build of the direct convolution: this file alone is compiled with -mavx512f, and
// conv.cpp only calls it when the CPU reports AVX-512F.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "conv_direct.h"

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
};
#include "conv_direct_kernels.inc"
}  // namespace
void direct_conv(const DirectConvArgs& a) { run(a); }
}  // namespace avx512
}  // namespace fastdl
