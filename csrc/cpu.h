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
bool cpu_has_avx2_fma();
std::string simd_isa();       // which build of the element-wise kernels runs: "avx2+fma" or "baseline"

}  // namespace fastdl
