#include "softmax.h"

#include <type_traits>
#include <vector>

#include "common.h"
#include "conv_direct.h"
#include "simd.h"

namespace fastdl {

#ifdef FASTDL_HAVE_AVX512_BUILD
namespace avx512act {  // act_avx512.cpp: simd_kernels.inc's rows compiled for AVX-512
template <class T> void softmax_row(const T*, T*, int64_t, bool);
template <class T> void softmax_row_backward(const T*, const T*, T*, int64_t, bool);
}  // namespace avx512act
#endif

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per thread

// A row's softmax: the AVX-512 build for float32 where the CPU runs it (4096 x 1000 at 1 thread: 3.4 ms
// on the AVX2 build, which spills exp's constants and its sums to the stack), else the dispatched one.
template <class T> using RowFn = void (*)(const T*, T*, int64_t, bool);
template <class T> using RowBackFn = void (*)(const T*, const T*, T*, int64_t, bool);
template <class T> RowFn<T> softmax_row_fn() {
#ifdef FASTDL_HAVE_AVX512_BUILD
  if (std::is_same_v<T, float> && conv_direct_width() == 16) return avx512act::softmax_row<T>;
#endif
  return SIMD(softmax_row<T>);
}
template <class T> RowBackFn<T> softmax_row_backward_fn() {
#ifdef FASTDL_HAVE_AVX512_BUILD
  if (std::is_same_v<T, float> && conv_direct_width() == 16) return avx512act::softmax_row_backward<T>;
#endif
  return SIMD(softmax_row_backward<T>);
}

template <class T>
void forward(const T* x, T* y, int64_t outer, int64_t d, int64_t inner, bool log) {
  if (inner == 1) {
    const auto row = softmax_row_fn<T>();
    parallel_for(outer, kGrain / std::max<int64_t>(d, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) row(x + o * d, y + o * d, d, log);
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
    const auto row = softmax_row_backward_fn<T>();
    parallel_for(outer, kGrain / std::max<int64_t>(d, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) row(gy + o * d, y + o * d, gx + o * d, d, log);
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
