// The portable (baseline x86-64 / any CPU) build of the per-range kernels.
#include "simd.h"
#include "wordvec.h"

namespace fastdl {
namespace base {
#include "simd_kernels.inc"
#include "act_kernels.inc"
#include "attention_kernels.inc"
#include "wordvec_kernels.inc"
}  // namespace base
}  // namespace fastdl
