#include "elementwise.h"

#include "common.h"
#include "simd.h"

namespace fastdl {

namespace {
constexpr int64_t kGrain = 1 << 15;  // elements per thread below which one thread runs

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

#define FASTDL_UNARY(NAME, FN)                                                          \
  template <class T> void NAME(const T* x, T* y, int64_t n) {                           \
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) { SIMD(FN<T>)(x + b, y + b, e - b); }); \
  }
#define FASTDL_BINARY(NAME, FN)                                                                       \
  template <class T> void NAME(const T* gy, const T* y, T* gx, int64_t n) {                           \
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) { SIMD(FN<T>)(gy + b, y + b, gx + b, e - b); }); \
  }
FASTDL_UNARY(relu_forward, relu_f)
FASTDL_UNARY(tanh_forward, tanh_f)
FASTDL_UNARY(sigmoid_forward, sigmoid_f)
FASTDL_BINARY(relu_backward, relu_b)
FASTDL_BINARY(tanh_backward, tanh_b)
FASTDL_BINARY(sigmoid_backward, sigmoid_b)
#undef FASTDL_UNARY
#undef FASTDL_BINARY

void dropout_mask(uint8_t* mask, int64_t n, double p, uint64_t seed) {
  // u = top 53 bits of splitmix64(seed + (i + 1) * golden) / 2^53
  const uint64_t golden = 0x9e3779b97f4a7c15ULL;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t h = splitmix64(seed + (uint64_t)(i + 1) * golden);
      const double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);
      mask[i] = u >= p;
    }
  });
}

template <class T> void dropout_apply(const T* x, const uint8_t* mask, T scale, T* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { SIMD(dropout_a<T>)(x + b, mask + b, scale, y + b, e - b); });
}

#define FASTDL_INSTANTIATE(T)                                                 \
  template void relu_forward<T>(const T*, T*, int64_t);                       \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);            \
  template void tanh_forward<T>(const T*, T*, int64_t);                       \
  template void tanh_backward<T>(const T*, const T*, T*, int64_t);            \
  template void sigmoid_forward<T>(const T*, T*, int64_t);                    \
  template void sigmoid_backward<T>(const T*, const T*, T*, int64_t);         \
  template void dropout_apply<T>(const T*, const uint8_t*, T, T*, int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
