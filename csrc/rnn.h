// Recurrent layers over a whole sequence, one layer and one direction per call:
// the input projection for all steps is one GEMM, each step adds one GEMM for the
// hidden path and one fused pass over the gates.  Gate order as PyTorch:
// LSTM (i, f, g, o), GRU (r, z, n).  Shapes: x (T, B, I), h0/c0 (B, H),
// w_ih (G*H, I), w_hh (G*H, H), b_ih/b_hh (G*H) or null; G = 1 (RNN), 3 (GRU), 4 (LSTM).
#pragma once
#include <cstdint>

namespace fastdl {

enum class RnnMode { Tanh = 0, Relu = 1, GRU = 2, LSTM = 3 };

inline int64_t rnn_gates(RnnMode m) { return m == RnnMode::LSTM ? 4 : m == RnnMode::GRU ? 3 : 1; }

struct RnnDims {
  int64_t T, B, I, H;
  RnnMode mode;
  bool reverse;            // run t = T-1 .. 0 (the backward direction of a bidirectional layer)
  const int64_t* lengths;  // (B) or null: steps t >= lengths[b] keep b's state and output 0
};

// -> out (T, B, H), hn (B, H), cn (B, H, LSTM only); saved for backward, each null when not wanted
// (inference): gates (T, B, G*H) activated gates (LSTM i f g o, GRU r z n), cs (T, B, H) LSTM cells,
// hnl (T, B, H) GRU's W_hn h + b_hn.  float32 with H a multiple of the SIMD width runs every step as
// one pass over blocks of hidden units: the recurrent product on W_hh packed once per call
// (gemm_packed.h), then that block's gates, with no GEMM library call and one barrier per step.  A
// layer whose batch fills whole SIMD vectors (AVX-512 or AVX2, padded by at most a quarter) instead
// keeps the batch along the vectors: gates^T = W x^T + W h^T with h^T resident in L1 and W streamed
// once per step and group of batch columns.
template <class T>
void rnn_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                 const T* b_ih, const T* b_hh, T* out, T* hn, T* cn, T* gates, T* cs, T* hnl);

// dout (T, B, H), dhn (B, H), dcn (B, H) or null -> dx (T, B, I), dh0, dc0, dw_ih, dw_hh, db_ih, db_hh
// (any output may be null when not needed).
template <class T>
void rnn_backward(const RnnDims& d, const T* dout, const T* dhn, const T* dcn, const T* x, const T* h0, const T* c0,
                  const T* w_ih, const T* w_hh, const T* out, const T* gates, const T* cs, const T* hnl, T* dx, T* dh0,
                  T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh);

}  // namespace fastdl
