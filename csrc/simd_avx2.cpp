// The AVX2+FMA build of the per-range kernels; this file alone is compiled
// with -mavx2 -mfma, and simd.h only calls into it when the CPU has both.
#include <immintrin.h>

#include "simd.h"
#include "wordvec.h"

namespace fastdl {
namespace avx2 {
#include "simd_kernels.inc"
#include "act_kernels.inc"
#include "attention_kernels.inc"
#include "wordvec_kernels.inc"
}  // namespace avx2
}  // namespace fastdl
