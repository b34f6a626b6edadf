// The float32 scaled dot-product attention on the packed tile kernel (gemm_packed.h), used by
// attention.cpp when the CPU runs one: keys and values are packed once per head into panels of PW
// columns and reused by every query block, where BLAS would pack them again for each block.
#pragma once
#include <cstdint>

#include "attention.h"

namespace fastdl {

// True when a packed tile kernel runs here (AVX-512 or AVX2 build, not capped off).
bool attention_packed_available();

void attention_forward_packed(const float* q, const float* k, const float* v, AttnMask<float> mask, float* out,
                              float* lse, int64_t B, int64_t L, int64_t S, int64_t E, int64_t Ev, bool causal,
                              float scale, double dropout_p, uint64_t seed);

void attention_backward_packed(const float* gout, const float* q, const float* k, const float* v, const float* out,
                               const float* lse, AttnMask<float> mask, float* gq, float* gk, float* gv, int64_t B,
                               int64_t L, int64_t S, int64_t E, int64_t Ev, bool causal, float scale,
                               double dropout_p, uint64_t seed);

// Shared with attention.cpp: the mask row of query i of batch b (null without a mask), the keys a
// causal row sees in a block, and the dropout of one row of weights.
template <class T> const T* attn_mask_row(const AttnMask<T>& m, int64_t b, int64_t i, int64_t S) {
  if (!m.data) return nullptr;
  const int64_t mb = (b / m.div) % m.mb;
  return m.data + (mb * m.ml + (m.ml == 1 ? 0 : i)) * S;
}
inline int64_t attn_valid_keys(bool causal, int64_t row, int64_t j0, int64_t nk) {
  if (!causal) return nk;
  return row + 1 - j0 < 0 ? 0 : (row + 1 - j0 < nk ? row + 1 - j0 : nk);
}
template <class T>
void attn_drop_row(T* p, int64_t nk, int64_t b, int64_t row, int64_t j0, int64_t L, int64_t S, double pdrop,
                   uint64_t seed);

}  // namespace fastdl
