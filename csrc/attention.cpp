#include "attention.h"

#include <vector>

#include "common.h"

namespace fastdl {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per thread

// One contiguous row (inner == 1): three passes, the exp pass vectorised.
template <class T>
FASTDL_DISPATCH void softmax_row(const T* __restrict__ x, T* __restrict__ y, int64_t d, bool log) {
  T m = -std::numeric_limits<T>::infinity();
  bool nan = false;
  for (int64_t i = 0; i < d; ++i) {
    m = x[i] > m ? x[i] : m;
    nan |= x[i] != x[i];
  }
  if (nan) m = std::numeric_limits<T>::quiet_NaN();
  if (m == -std::numeric_limits<T>::infinity()) m = T(0);  // all -inf: exp gives 0/0 = NaN, as PyTorch
  T s = 0;
  if (log) {
    for (int64_t i = 0; i < d; ++i) s += vexp(x[i] - m);
    const T ls = std::log(s);
    for (int64_t i = 0; i < d; ++i) y[i] = (x[i] - m) - ls;  // not x - (m + ls): keeps precision
  } else {
    for (int64_t i = 0; i < d; ++i) {
      const T e = vexp(x[i] - m);
      y[i] = e;
      s += e;
    }
    const T r = T(1) / s;
    for (int64_t i = 0; i < d; ++i) y[i] *= r;
  }
}

template <class T>
FASTDL_DISPATCH void softmax_row_backward(const T* __restrict__ gy, const T* __restrict__ y,
                                          T* __restrict__ gx, int64_t d, bool log) {
  T s = 0;
  if (log) {
    for (int64_t i = 0; i < d; ++i) s += gy[i];
    for (int64_t i = 0; i < d; ++i) gx[i] = gy[i] - vexp(y[i]) * s;
  } else {
    for (int64_t i = 0; i < d; ++i) s += gy[i] * y[i];
    for (int64_t i = 0; i < d; ++i) gx[i] = y[i] * (gy[i] - s);
  }
}

// Strided axis (inner > 1): work on a block of `inner` columns at once so
// every inner loop is contiguous.
template <class T>
void softmax_block(const T* x, T* y, int64_t d, int64_t inner, bool log) {
  std::vector<T> m(inner, -std::numeric_limits<T>::infinity()), s(inner, T(0));
  std::vector<uint8_t> nan(inner, 0);
  for (int64_t k = 0; k < d; ++k) {
    const T* r = x + k * inner;
    for (int64_t j = 0; j < inner; ++j) {
      m[j] = r[j] > m[j] ? r[j] : m[j];
      nan[j] |= r[j] != r[j];
    }
  }
  for (int64_t j = 0; j < inner; ++j) {
    if (nan[j]) m[j] = std::numeric_limits<T>::quiet_NaN();
    else if (m[j] == -std::numeric_limits<T>::infinity()) m[j] = T(0);
  }
  for (int64_t k = 0; k < d; ++k) {
    const T* r = x + k * inner;
    T* o = y + k * inner;
    for (int64_t j = 0; j < inner; ++j) {
      const T e = vexp(r[j] - m[j]);
      s[j] += e;
      if (!log) o[j] = e;
    }
  }
  for (int64_t k = 0; k < d; ++k) {
    const T* r = x + k * inner;
    T* o = y + k * inner;
    if (log)
      for (int64_t j = 0; j < inner; ++j) o[j] = (r[j] - m[j]) - std::log(s[j]);
    else
      for (int64_t j = 0; j < inner; ++j) o[j] /= s[j];
  }
}

template <class T>
void softmax_block_backward(const T* gy, const T* y, T* gx, int64_t d, int64_t inner, bool log) {
  std::vector<T> s(inner, T(0));
  for (int64_t k = 0; k < d; ++k)
    for (int64_t j = 0; j < inner; ++j) s[j] += log ? gy[k * inner + j] : gy[k * inner + j] * y[k * inner + j];
  for (int64_t k = 0; k < d; ++k)
    for (int64_t j = 0; j < inner; ++j) {
      const int64_t i = k * inner + j;
      gx[i] = log ? gy[i] - vexp(y[i]) * s[j] : y[i] * (gy[i] - s[j]);
    }
}

template <class T>
void forward(const T* x, T* y, int64_t outer, int64_t d, int64_t inner, bool log) {
  if (inner == 1) {
    parallel_for(outer, kGrain / std::max<int64_t>(d, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) softmax_row<T>(x + o * d, y + o * d, d, log);
    });
  } else {
    parallel_for(outer, kGrain / std::max<int64_t>(d * inner, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) softmax_block<T>(x + o * d * inner, y + o * d * inner, d, inner, log);
    });
  }
}

template <class T>
void backward(const T* gy, const T* y, T* gx, int64_t outer, int64_t d, int64_t inner, bool log) {
  if (inner == 1) {
    parallel_for(outer, kGrain / std::max<int64_t>(d, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) softmax_row_backward<T>(gy + o * d, y + o * d, gx + o * d, d, log);
    });
  } else {
    parallel_for(outer, kGrain / std::max<int64_t>(d * inner, 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const int64_t off = o * d * inner;
        softmax_block_backward<T>(gy + off, y + off, gx + off, d, inner, log);
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
