// Process-wide facts and settings: the BLAS and the CPU (the thread pool is in threads.h).
#pragma once
#include <string>

namespace fastdl {

// Makes BLAS run on the calling thread only (once, when the module loads).
void blas_single_threaded();
std::string blas_config();    // e.g. "OpenBLAS 0.3.27 DYNAMIC_ARCH ... Haswell"
std::string blas_corename();
std::string cpu_features();   // "avx2 fma ..." as seen by the CPU at run time
// 0 baseline, 1 AVX2+FMA, 2 AVX-512: the widest the CPU has, capped by FASTDL_SIMD (baseline, avx2)
int simd_level();
bool cpu_has_avx2_fma();      // simd_level() >= 1
std::string simd_isa();       // which build of the element-wise kernels runs: "avx2+fma" or "baseline"

}  // namespace fastdl
