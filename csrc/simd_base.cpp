// The portable (baseline x86-64 / any CPU) build of the per-range kernels.
#include "simd.h"

namespace fastdl {
namespace base {
#include "simd_kernels.inc"
#include "attention_kernels.inc"
}  // namespace base
}  // namespace fastdl
