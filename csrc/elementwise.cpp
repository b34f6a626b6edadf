#include "elementwise.h"

#include <cmath>

#include "common.h"
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

namespace {
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSqrt2Pi = 0.79788456080286535587989211986876;  // sqrt(2 / pi)
constexpr double kInvSqrt2 = 0.70710678118654752440084436210485;
constexpr double kInvSqrt2Pi = 0.39894228040143267793994605993438;  // 1 / sqrt(2 pi)

template <class T> inline T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <class T> inline T softplus1(T x) { return x > T(20) ? x : std::log1p(std::exp(x)); }

template <class T> inline T act_f(T x, Act k, T a, T b) {
  switch (k) {
    case Act::leaky_relu: return x > 0 ? x : a * x;
    case Act::elu: return x > 0 ? x : a * std::expm1(x);
    case Act::selu: return T(kSeluScale) * (x > 0 ? x : T(kSeluAlpha) * std::expm1(x));
    case Act::celu: return x > 0 ? x : a * std::expm1(x / a);
    case Act::gelu: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    case Act::gelu_tanh: return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2Pi) * (x + T(0.044715) * x * x * x)));
    case Act::silu: return x * sigm(x);
    case Act::mish: return x * std::tanh(softplus1(x));
    case Act::softplus: return x * a > b ? x : std::log1p(std::exp(a * x)) / a;
    case Act::hardtanh: return x < a ? a : (x > b ? b : x);
    case Act::hardsigmoid: return x <= T(-3) ? T(0) : (x >= T(3) ? T(1) : x / T(6) + T(0.5));
    case Act::hardswish: return x <= T(-3) ? T(0) : (x >= T(3) ? x : x * (x + T(3)) / T(6));
  }
  return x;
}

template <class T> inline T act_d(T x, Act k, T a, T b) {
  switch (k) {
    case Act::leaky_relu: return x > 0 ? T(1) : (x == x ? a : x);
    case Act::elu: return x > 0 ? T(1) : (x == x ? a * std::exp(x) : x);
    case Act::selu: return x > 0 ? T(kSeluScale) : (x == x ? T(kSeluScale * kSeluAlpha) * std::exp(x) : x);
    case Act::celu: return x > 0 ? T(1) : (x == x ? std::exp(x / a) : x);
    case Act::gelu:
      return T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2))) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    case Act::gelu_tanh: {
      const T t = std::tanh(T(kSqrt2Pi) * (x + T(0.044715) * x * x * x));
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kSqrt2Pi) * (T(1) + T(3 * 0.044715) * x * x);
    }
    case Act::silu: {
      const T s = sigm(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case Act::mish: {
      const T t = std::tanh(softplus1(x));
      return t + x * (T(1) - t * t) * sigm(x);
    }
    case Act::softplus: return x * a > b ? T(1) : (x == x ? sigm(a * x) : x);
    case Act::hardtanh: return (x > a && x < b) ? T(1) : (x == x ? T(0) : x);
    case Act::hardsigmoid: return (x > T(-3) && x < T(3)) ? T(1) / T(6) : (x == x ? T(0) : x);
    case Act::hardswish: return x <= T(-3) ? T(0) : (x < T(3) ? x / T(3) + T(0.5) : (x == x ? T(1) : x));
  }
  return x;
}
}  // namespace

template <class T> void activation_forward(const T* x, T* y, int64_t n, Act kind, double alpha, double beta) {
  const T a = T(alpha), b = T(beta);
  parallel_for(n, kGrain / 8, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = act_f(x[i], kind, a, b);
  });
}

template <class T>
void activation_backward(const T* gy, const T* x, T* gx, int64_t n, Act kind, double alpha, double beta) {
  const T a = T(alpha), b = T(beta);
  parallel_for(n, kGrain / 8, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) gx[i] = gy[i] * act_d(x[i], kind, a, b);
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
