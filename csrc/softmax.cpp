#include "softmax.h"

#include <vector>

#include "common.h"
#include "simd.h"

namespace fastdl {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per thread

template <class T>
void forward(const T* x, T* y, int64_t outer, int64_t d, int64_t inner, bool log) {
  if (inner == 1) {
    parallel_for(outer, kGrain / std::max<int64_t>(d, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) SIMD(softmax_row<T>)(x + o * d, y + o * d, d, log);
    });
  } else {
    parallel_for(outer, kGrain / std::max<int64_t>(d * inner, 1) + 1, [&](int64_t b, int64_t e) {
      std::vector<T> m(inner), s(inner);
      for (int64_t o = b; o < e; ++o)
        SIMD(softmax_block<T>)(x + o * d * inner, y + o * d * inner, d, inner, log, m.data(), s.data());
    });
  }
}

template <class T>
void backward(const T* gy, const T* y, T* gx, int64_t outer, int64_t d, int64_t inner, bool log) {
  if (inner == 1) {
    parallel_for(outer, kGrain / std::max<int64_t>(d, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) SIMD(softmax_row_backward<T>)(gy + o * d, y + o * d, gx + o * d, d, log);
    });
  } else {
    parallel_for(outer, kGrain / std::max<int64_t>(d * inner, 1) + 1, [&](int64_t b, int64_t e) {
      std::vector<T> s(inner);
      for (int64_t o = b; o < e; ++o) {
        const int64_t off = o * d * inner;
        SIMD(softmax_block_backward<T>)(gy + off, y + off, gx + off, d, inner, log, s.data());
      }
    });
  }
}
}  // namespace

template <class T> void softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner) {
  forward<T>(x, y, outer, dim, inner, false);
}
template <class T> void softmax_backward(const T* gy, const T* y, T* gx, int64_t outer, int64_t dim, int64_t inner) {
  backward<T>(gy, y, gx, outer, dim, inner, false);
}
template <class T> void log_softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner) {
  forward<T>(x, y, outer, dim, inner, true);
}
template <class T> void log_softmax_backward(const T* gy, const T* y, T* gx, int64_t outer, int64_t dim, int64_t inner) {
  backward<T>(gy, y, gx, outer, dim, inner, true);
}

#define FASTDL_INSTANTIATE(T)                                                                  \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t);                   \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t);        \
  template void log_softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t);               \
  template void log_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
