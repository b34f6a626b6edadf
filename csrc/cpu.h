// Process-wide settings: thread pools (OpenMP + OpenBLAS) and build facts.
#pragma once
#include <string>

namespace fastdl {

void set_num_threads(int n);  // OpenMP and BLAS pools together
int get_num_threads();
bool has_openmp();
std::string blas_config();    // e.g. "OpenBLAS 0.3.27 DYNAMIC_ARCH ... Haswell"
std::string blas_corename();
std::string cpu_features();   // "avx2 fma ..." as seen by the CPU at run time
// 0 baseline, 1 AVX2+FMA, 2 AVX-512: the widest the CPU has, capped by FASTDL_SIMD (baseline, avx2)
int simd_level();
bool cpu_has_avx2_fma();      // simd_level() >= 1
std::string simd_isa();       // which build of the element-wise kernels runs: "avx2+fma" or "baseline"

// While one is alive, BLAS runs on the calling thread only, so each thread of an OpenMP region may
// call BLAS on its own block of work (OpenBLAS's own pool must never be entered from such a region).
// Nested and concurrent guards are counted: the last one out restores the pool size.
class SerialBlas {
 public:
  SerialBlas();
  ~SerialBlas();
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;
};

}  // namespace fastdl
