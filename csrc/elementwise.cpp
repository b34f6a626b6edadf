#include "elementwise.h"

#include <cmath>
#include <type_traits>

#include "common.h"
#include "conv_direct.h"
#include "simd.h"

namespace fastdl {

namespace {
constexpr int64_t kGrain = 1 << 15;  // elements per thread below which one thread runs
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

#ifdef FASTDL_HAVE_AVX512_BUILD
namespace avx512act {
template <class T> void act_forward(const T*, T*, int64_t, int, T, T);
template <class T> void act_backward(const T*, const T*, T*, int64_t, int, T, T);
}  // namespace avx512act
#endif

// float32 on a CPU that runs the AVX-512 kernels: act_kernels.inc's AVX-512 build
template <class T> bool act512() {
#ifdef FASTDL_HAVE_AVX512_BUILD
  return std::is_same_v<T, float> && conv_direct_width() == 16;
#else
  return false;
#endif
}

// The per-range loops are in act_kernels.inc, compiled for each instruction set.
template <class T> void activation_forward(const T* x, T* y, int64_t n, Act kind, double alpha, double beta) {
  const bool wide = act512<T>();
  parallel_for(n, kGrain / 4, [&](int64_t s, int64_t e) {
#ifdef FASTDL_HAVE_AVX512_BUILD
    if (wide) return avx512act::act_forward<T>(x + s, y + s, e - s, int(kind), T(alpha), T(beta));
#endif
    (void)wide;
    SIMD(act_forward<T>)(x + s, y + s, e - s, int(kind), T(alpha), T(beta));
  });
}

template <class T>
void activation_backward(const T* gy, const T* x, T* gx, int64_t n, Act kind, double alpha, double beta) {
  const bool wide = act512<T>();
  parallel_for(n, kGrain / 4, [&](int64_t s, int64_t e) {
#ifdef FASTDL_HAVE_AVX512_BUILD
    if (wide) return avx512act::act_backward<T>(gy + s, x + s, gx + s, e - s, int(kind), T(alpha), T(beta));
#endif
    (void)wide;
    SIMD(act_backward<T>)(gy + s, x + s, gx + s, e - s, int(kind), T(alpha), T(beta));
  });
}

void dropout_mask(uint8_t* mask, int64_t n, double p, uint64_t seed) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) mask[i] = counter_uniform(seed, i) >= p;
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
  template void dropout_apply<T>(const T*, const uint8_t*, T, T*, int64_t);   \
  template void activation_forward<T>(const T*, T*, int64_t, Act, double, double); \
  template void activation_backward<T>(const T*, const T*, T*, int64_t, Act, double, double);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
