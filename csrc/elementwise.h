// Element-wise activations and dropout.  x, y, gy, gx are flat arrays of n.
#pragma once
#include <cstdint>

namespace fastdl {

// y = max(x, 0) (NaN stays NaN);  gx = gy * (y > 0)
template <class T> void relu_forward(const T* x, T* y, int64_t n);
template <class T> void relu_backward(const T* gy, const T* y, T* gx, int64_t n);
// y = tanh(x);  gx = gy * (1 - y^2)
template <class T> void tanh_forward(const T* x, T* y, int64_t n);
template <class T> void tanh_backward(const T* gy, const T* y, T* gx, int64_t n);
// y = 1 / (1 + exp(-x));  gx = gy * y * (1 - y)
template <class T> void sigmoid_forward(const T* x, T* y, int64_t n);
template <class T> void sigmoid_backward(const T* gy, const T* y, T* gx, int64_t n);

// The parametrised activations of PyTorch, as one family selected by `kind` (alpha, beta as listed):
//   leaky_relu (alpha = negative slope), elu (alpha), selu, celu (alpha), gelu (exact, erf), gelu_tanh,
//   silu, mish, softplus (alpha = beta, beta = threshold), hardtanh (alpha = min, beta = max),
//   hardsigmoid, hardswish.
// Forward y = f(x); backward gx = gy * f'(x), from the input x (GELU, SiLU and Mish need it).
// NaN in gives NaN out.
enum class Act { leaky_relu, elu, selu, celu, gelu, gelu_tanh, silu, mish, softplus, hardtanh, hardsigmoid, hardswish };
template <class T> void activation_forward(const T* x, T* y, int64_t n, Act kind, double alpha, double beta);
template <class T>
void activation_backward(const T* gy, const T* x, T* gx, int64_t n, Act kind, double alpha, double beta);

// keep-mask (n) of inverted dropout: mask[i] = u_i >= p, u_i uniform in [0, 1)
// from a counter-based generator (splitmix64 of seed and i), so the mask does
// not depend on the thread count and the NumPy reference reproduces it.
void dropout_mask(uint8_t* mask, int64_t n, double p, uint64_t seed);
// y = x * mask * scale  (forward with scale = 1/(1-p); also the backward)
template <class T> void dropout_apply(const T* x, const uint8_t* mask, T scale, T* y, int64_t n);

}  // namespace fastdl
