// A product whose right operand is packed once and used many times: the recurrent GEMM of an RNN
// step, h (B, H) @ W_hh^T, where BLAS would pack W_hh again at every step.  Per-ISA builds of the
// tile kernel (gemm_packed_kernels.inc, compiled into the AVX2 and AVX-512 objects of the direct
// convolution), chosen at run time with the same width: 16 (AVX-512), 8 (AVX2) or 0 (none).
#pragma once
#include <cstdint>

namespace fastdl {

// C (mr, nv * width) += A (mr, K; rows lda apart) @ Bp (K, nv * width), Bp packed row after row;
// C's rows are ldc apart and the width-long vectors of a row ldv apart (width: packed; larger: e.g.
// one gate of every row after another).  mr <= rows(nv), nv in {1, 3, 4}.
struct PackedKernels {
  void (*tile)(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv, int mr,
               int nv);
  int (*rows)(int nv);  // the most rows one tile takes for nv vectors per row
  // the same with C = A @ Bp (C not read)
  void (*tile_set)(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv,
                   int mr, int nv);
};

#define FASTDL_PACKED_DECLARE                                                                              \
  void packed_tile(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc,         \
                   int64_t ldv, int mr, int nv);                                                           \
  int packed_rows(int nv);                                                                                 \
  void packed_tile_set(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc,     \
                       int64_t ldv, int mr, int nv);                                                       \
  double fma_peak(int64_t iters);
#ifdef FASTDL_HAVE_AVX512_BUILD
namespace avx512 {
FASTDL_PACKED_DECLARE
}
#endif
#ifdef FASTDL_HAVE_AVX2_BUILD
namespace avx2 {
FASTDL_PACKED_DECLARE
}
#endif
#undef FASTDL_PACKED_DECLARE

// The build for width 16 or 8 (conv_direct_width() says which the CPU runs); throws for another.
const PackedKernels& packed_kernels(int width);
// FLOP/s of independent FMA chains on one core with the widest build the CPU runs (0 without one).
double fma_peak_flops(int64_t iters);

}  // namespace fastdl
