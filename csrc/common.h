// Shared helpers for the kernels: threading with a grain size on the pool (threads.h).  No pybind11
// here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

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

// An allocator on 64-byte boundaries: buffers the tile kernels load whole vectors of (packed panels,
// accumulators) then never split a cache line (a split load costs two: the allocator's large blocks
// start 16 bytes past a page, and a tile on such panels measured 73-80% of the FMA peak against 82-84%).
template <class T> struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U> Aligned64(const Aligned64<U>&) {}  // NOLINT(google-explicit-constructor)
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const Aligned64&) const { return true; }
  bool operator!=(const Aligned64&) const { return false; }
};
template <class T> using avector = std::vector<T, Aligned64<T>>;

// The counter-based uniform draw behind every dropout mask: the top 53 bits of
// splitmix64(seed + (i + 1) * golden) / 2^53, the same for any thread count and in the NumPy twin.
inline double counter_uniform(uint64_t seed, int64_t i) {
  uint64_t z = seed + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace fastdl
