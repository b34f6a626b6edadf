// Attention family: scaled dot-product attention (blocked, online softmax, log-sum-exp saved for
// backward), a masked and scaled softmax, and additive (Bahdanau) attention scores.
// Arrays are C-contiguous; T is float or double.
#pragma once
#include <cstdint>

namespace fastdl {

// The additive mask of a scaled dot-product attention: (mb, ml, S), ml = 1 (one row for every
// query) or L; batch b reads mask slice (b / div) % mb.  data == nullptr: no mask.
template <class T> struct AttnMask {
  const T* data = nullptr;
  int64_t mb = 1, ml = 1, div = 1;
};

// q (B, L, E), k (B, S, E), v (B, S, Ev) -> out (B, L, Ev), lse (B, L):
// out = dropout(softmax(scale q k^T + mask)) v, lse the log-sum-exp of each row of scores (-inf
// for a row that may attend to nothing; its output is 0).  causal: query i sees keys j <= i.
// Dropout (p > 0) keeps weight (b, i, j) when counter_uniform(seed, (b L + i) S + j) >= p.
template <class T>
void attention_forward(const T* q, const T* k, const T* v, AttnMask<T> mask, T* out, T* lse, int64_t B, int64_t L,
                       int64_t S, int64_t E, int64_t Ev, bool causal, T scale, double dropout_p, uint64_t seed);

// The gradients of attention_forward from gout (B, L, Ev), recomputing the scores block by block
// from q, k and lse; out is the forward's output.  gq, gk, gv are written whole.
template <class T>
void attention_backward(const T* gout, const T* q, const T* k, const T* v, const T* out, const T* lse,
                        AttnMask<T> mask, T* gq, T* gk, T* gv, int64_t B, int64_t L, int64_t S, int64_t E,
                        int64_t Ev, bool causal, T scale, double dropout_p, uint64_t seed);

// x (R, n) -> y = softmax(scale * x) along n over entries with mask != 0 (mask (R, n) or null);
// a row with nothing kept is 0.  Backward: gx = scale * y * (gy - sum(gy * y)).
template <class T> void masked_softmax_forward(const T* x, const uint8_t* mask, T* y, int64_t R, int64_t n, T scale);
template <class T> void masked_softmax_backward(const T* gy, const T* y, T* gx, int64_t R, int64_t n, T scale);

// qp (B, L, H), kp (B, S, H), v (H) -> scores (B, L, S) = sum_h v_h tanh(qp[b,i,h] + kp[b,j,h]).
template <class T>
void additive_attention_forward(const T* qp, const T* kp, const T* v, T* scores, int64_t B, int64_t L, int64_t S,
                                int64_t H);
// gs (B, L, S) -> gqp, gkp, gv (each may be null: not needed), the tanh recomputed.
template <class T>
void additive_attention_backward(const T* gs, const T* qp, const T* kp, const T* v, T* gqp, T* gkp, T* gv, int64_t B,
                                 int64_t L, int64_t S, int64_t H);

}  // namespace fastdl
