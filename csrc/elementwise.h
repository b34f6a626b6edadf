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

// keep-mask (n) of inverted dropout: mask[i] = u_i >= p, u_i uniform in [0, 1)
// from a counter-based generator (splitmix64 of seed and i), so the mask does
// not depend on the thread count and the NumPy reference reproduces it.
void dropout_mask(uint8_t* mask, int64_t n, double p, uint64_t seed);
// y = x * mask * scale  (forward with scale = 1/(1-p); also the backward)
template <class T> void dropout_apply(const T* x, const uint8_t* mask, T scale, T* y, int64_t n);

}  // namespace fastdl
