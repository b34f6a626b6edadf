// Shared helpers for the kernels: threading with a grain size on the pool (threads.h).  No pybind11
// here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "threads.h"

namespace fastdl {

// Threads a kernel may use from here: 1 inside a parallel region (nested regions run serially).
inline int max_threads() { return in_parallel() ? 1 : num_threads(); }

// Runs f(begin, end) over [0, n) in contiguous chunks, one per thread of the pool.  Work below
// `grain` items per thread stays on fewer threads (one for small problems).  The chunks depend on
// n, grain and the thread count only, never on which thread runs them.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  const int64_t nthr = std::min<int64_t>(max_threads(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (nthr <= 1) {
    f(int64_t(0), n);
    return;
  }
  const int64_t chunk = (n + nthr - 1) / nthr;
  parallel_parts(nthr, [&](int64_t part, int64_t) {
    const int64_t b = part * chunk, e = std::min(n, b + chunk);
    if (b < e) f(b, e);
  });
}

}  // namespace fastdl
