// Shared helpers for the kernels: threading with a grain size, SIMD-friendly
// math for float, and the runtime-dispatch attribute.  No pybind11 here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifdef FASTDL_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastdl {

inline int max_threads() {
#ifdef FASTDL_HAVE_OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

// Runs f(begin, end) over [0, n) in contiguous chunks.  Work below `grain`
// items per thread stays on fewer threads (one for small problems).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  int64_t nthr = std::min<int64_t>(max_threads(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
#ifdef FASTDL_HAVE_OPENMP
  if (nthr > 1) {
#pragma omp parallel num_threads(static_cast<int>(nthr))
    {
      const int64_t tid = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t chunk = (n + nt - 1) / nt;
      const int64_t b = tid * chunk, e = std::min(n, b + chunk);
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  f(int64_t(0), n);
}

}  // namespace fastdl
