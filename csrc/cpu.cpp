#include "cpu.h"

#include <algorithm>

#include <cblas.h>

#include <cstdlib>

#include "common.h"

namespace fastdl {

void blas_single_threaded() {
  // BLAS always runs on the thread that calls it: the pool (threads.h) is the only one, and gemm.cpp
  // splits large products over it.  OpenBLAS then never starts its own busy-waiting threads.
  if (scipy_openblas_get_num_threads() != 1) scipy_openblas_set_num_threads(1);
}

std::string blas_config() { return scipy_openblas_get_config(); }
std::string blas_corename() { return scipy_openblas_get_corename(); }

int simd_level() {
  // FASTDL_SIMD caps the instruction sets used (tests run every build on one machine):
  // "baseline" the portable kernels only, "avx2" no AVX-512; unset or anything else: the CPU's best.
  static const int level = [] {
    int cap = 2;
    if (const char* force = std::getenv("FASTDL_SIMD")) {
      const std::string f(force);
      if (f == "baseline") cap = 0;
      if (f == "avx2") cap = 1;
    }
    int cpu = 0;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      cpu = __builtin_cpu_supports("avx512f") ? 2 : 1;
#endif
    return std::min(cap, cpu);
  }();
  return level;
}

bool cpu_has_avx2_fma() { return simd_level() >= 1; }

std::string simd_isa() {
#ifdef FASTDL_HAVE_AVX2_BUILD
  if (cpu_has_avx2_fma()) return "avx2+fma";
#endif
  return "baseline";
}

std::string cpu_features() {
  std::string out;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  const char* names[] = {"sse4.2", "avx", "avx2", "fma", "avx512f"};
  bool have[] = {(bool)__builtin_cpu_supports("sse4.2"), (bool)__builtin_cpu_supports("avx"),
                 (bool)__builtin_cpu_supports("avx2"), (bool)__builtin_cpu_supports("fma"),
                 (bool)__builtin_cpu_supports("avx512f")};
  for (int i = 0; i < 5; ++i)
    if (have[i]) out += (out.empty() ? "" : " ") + std::string(names[i]);
#endif
  return out;
}

}  // namespace fastdl
