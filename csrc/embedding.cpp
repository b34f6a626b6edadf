#include "embedding.h"

#include "common.h"

namespace fastdl {

namespace {
constexpr int64_t kGrain = 1 << 15;  // elements per thread below which one thread runs
}  // namespace

template <class T> void embedding_forward(const T* weight, const int64_t* idx, T* y, int64_t N, int64_t D) {
  parallel_for(N, std::max<int64_t>(1, kGrain / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) std::memcpy(y + n * D, weight + idx[n] * D, sizeof(T) * D);
  });
}

template <class T> void embedding_backward(const T* gy, const int64_t* idx, T* gw, int64_t N, int64_t V, int64_t D,
                                           int64_t padding_idx) {
  // zeroed by the pool, whole rows per thread (a fresh (V, D) array: its first touch, page faults
  // included, is most of this kernel's time for a large vocabulary)
  parallel_for(V, std::max<int64_t>(1, kGrain / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
    std::fill(gw + b * D, gw + e * D, T(0));
  });
  // split the embedding dimension across threads: every thread owns its columns, no races
  parallel_for(D, 16, [&](int64_t d0, int64_t d1) {
    for (int64_t n = 0; n < N; ++n) {
      if (idx[n] == padding_idx) continue;
      T* row = gw + idx[n] * D;
      const T* g = gy + n * D;
      for (int64_t d = d0; d < d1; ++d) row[d] += g[d];
    }
  });
}

#define FASTDL_INSTANTIATE(T)                                                              \
  template void embedding_forward<T>(const T*, const int64_t*, T*, int64_t, int64_t); \
  template void embedding_backward<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
