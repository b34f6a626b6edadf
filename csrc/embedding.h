// Embedding lookup and its scatter-add backward.
#pragma once
#include <cstdint>

namespace fastdl {

// Embedding lookup: weight (V, D), idx (N) -> y (N, D) = weight[idx]
template <class T> void embedding_forward(const T* weight, const int64_t* idx, T* y, int64_t N, int64_t D);
// Scatter-add: gw (V, D) = sum over n with idx[n] == v of gy[n]; the padding_idx row (if >= 0) stays 0
template <class T> void embedding_backward(const T* gy, const int64_t* idx, T* gw, int64_t N, int64_t V, int64_t D,
                                           int64_t padding_idx);

}  // namespace fastdl
