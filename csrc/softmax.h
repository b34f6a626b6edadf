// Softmax family along one axis.  The input is viewed as (outer, dim, inner):
// the reduced axis has length `dim` and stride `inner`.
#pragma once
#include <cstdint>

namespace fastdl {

// y = exp(x - max) / sum(exp(x - max)) along the axis (a row of NaN stays NaN)
template <class T> void softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner);
// gx = y * (gy - sum(gy * y))
template <class T> void softmax_backward(const T* gy, const T* y, T* gx, int64_t outer, int64_t dim, int64_t inner);
// y = x - max - log(sum(exp(x - max)))
template <class T> void log_softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner);
// gx = gy - exp(y) * sum(gy)
template <class T> void log_softmax_backward(const T* gy, const T* y, T* gx, int64_t outer, int64_t dim, int64_t inner);

}  // namespace fastdl
