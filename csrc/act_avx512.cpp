// The AVX-512 build of the activation family (act_kernels.inc) and of the attention rows
// (attention_kernels.inc): the same loops, vectorised 16 lanes wide.  This file alone is compiled with -mavx512f (and a preference for 512-bit vectors), and
// elementwise.cpp only calls it for float32 when the CPU runs the AVX-512 kernels (conv_direct_width).
#include <immintrin.h>

#include "simd.h"

namespace fastdl {
namespace avx512act {
#include "simd_kernels.inc"
#include "act_kernels.inc"
#include "attention_kernels.inc"
}  // namespace avx512act
}  // namespace fastdl
