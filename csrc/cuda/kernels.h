// CUDA kernels of fastdl (the optional module fastdl._C_cuda): plain C++ declarations on device
// pointers, sizes and a stream, so that the bindings (csrc/bind/cuda.cpp) need no CUDA headers.
// dtype: 0 = float32, 1 = float64.  Every launcher returns an empty string on success, else the CUDA
// error's text (the binding raises it).  Shapes and dtypes are checked by the caller: the bindings
// check sizes and pointers, the Python layer (fastdl/cuda/ops.py) shapes, dtypes and index ranges.
#pragma once
#include <cstdint>
#include <string>

namespace fastdl::cuda {

enum Act : int { kRelu = 0, kTanh = 1, kSigmoid = 2 };

std::string act_forward(int act, int dtype, const void* x, void* y, int64_t n, void* stream);
std::string act_backward(int act, int dtype, const void* gy, const void* y, void* gx, int64_t n, void* stream);

// Inverted dropout: out (n bytes) = 1 where counter_uniform(seed, i) >= p (the CPU kernel's hash, so the
// same mask on both devices), y = x * (mask ? scale : 0)
std::string dropout_mask(void* out, int64_t n, double p, uint64_t seed, void* stream);
std::string dropout_apply(int dtype, const void* x, const void* mask, void* y, int64_t n, double scale, void* stream);
// The parametrised activations of csrc/elementwise.h, kind 0..11 in reference.ACTIVATIONS's order
// (leaky_relu .. hardswish); the backward takes the input x and gives gy f'(x), NaN where x is NaN.
std::string activation_forward(int kind, int dtype, const void* x, void* y, int64_t n, double alpha, double beta,
                               void* stream);
std::string activation_backward(int kind, int dtype, const void* gy, const void* x, void* gx, int64_t n, double alpha,
                                double beta, void* stream);

// row-wise over the last axis of a (rows, cols) array; log = 1 for log-softmax
std::string softmax_forward(int log, int dtype, const void* x, void* y, int64_t rows, int64_t cols, void* stream);
std::string softmax_backward(int log, int dtype, const void* gy, const void* y, void* gx, int64_t rows, int64_t cols,
                             void* stream);

// softmax(scale x) over each row's entries whose mask byte (rows, cols; null: every entry) is nonzero,
// the others 0, a row with none kept all 0; its backward gx = scale y (gy - sum(gy y))
std::string masked_softmax_forward(int dtype, const void* x, const void* mask, void* y, int64_t rows, int64_t cols,
                                   double scale, void* stream);
std::string masked_softmax_backward(int dtype, const void* gy, const void* y, void* gx, int64_t rows, int64_t cols,
                                    double scale, void* stream);

// logits (rows, cols), target int64 (rows,) -> loss (rows,), lse (rows,); label smoothing eps
std::string cross_entropy_forward(int dtype, const void* x, const int64_t* t, void* loss, void* lse, int64_t rows,
                                  int64_t cols, int64_t ignore_index, double eps, void* stream);
std::string cross_entropy_backward(int dtype, const void* gloss, const void* x, const int64_t* t, const void* lse,
                                   void* gx, int64_t rows, int64_t cols, int64_t ignore_index, double eps,
                                   void* stream);

// PyTorch's update rules, in place (the CPU kernels' rules: csrc/optim.cpp)
std::string sgd_step(int dtype, void* p, const void* g, void* buf, int64_t n, double lr, double momentum,
                     double dampening, double weight_decay, bool nesterov, bool maximize, bool first_step,
                     void* stream);
std::string adam_step(int dtype, void* p, const void* g, void* m, void* v, void* vmax, int64_t n, double lr,
                      double beta1, double beta2, double eps, double weight_decay, bool decoupled, bool maximize,
                      int64_t step, void* stream);

// RMSprop: sq, gavg (centered, else null) and buf (momentum > 0, else null) in place
std::string rmsprop_step(int dtype, void* p, const void* g, void* sq, void* gavg, void* buf, int64_t n, double lr,
                         double alpha, double eps, double weight_decay, double momentum, bool maximize, void* stream);
// Adagrad (kind 0), Adadelta (1), Adamax (2), NAdam (3), RAdam (4): csrc/optim.h's adaptive_step, its
// states a and b (null for Adagrad) and arguments
std::string adaptive_step(int kind, int dtype, void* p, const void* g, void* a, void* b, int64_t n, double lr,
                          double beta1, double beta2, double eps, double weight_decay, bool decoupled, bool maximize,
                          int64_t step, double extra, double extra2, void* stream);

// weight (V, D); indices int64 (n,) in [0, V)
std::string embedding_forward(int dtype, const void* w, const int64_t* idx, void* y, int64_t n, int64_t d,
                              void* stream);
std::string embedding_backward(int dtype, const void* gy, const int64_t* idx, void* gw, int64_t n, int64_t d,
                               int64_t v, int64_t padding_idx, void* stream);

// Convolution as im2col + cuBLAS (the GEMMs through CuPy): x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW),
// row (c, i, j), column (n, oh, ow) reading x[n, c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] (0 in the
// padding); col2im is its adjoint, written as a gather (each input cell sums the entries that read
// it: no atomics, a fixed order).
struct ConvGeom {
  int64_t N, C, H, W, kh, kw, OH, OW, sh, sw, pt, pl, dh, dw;
};
std::string im2col(int dtype, const void* x, void* cols, const ConvGeom& g, void* stream);
std::string col2im(int dtype, const void* cols, void* gx, const ConvGeom& g, void* stream);

// Pooling over planes (P, H, W) -> (P, OH, OW), PyTorch's rules as the CPU kernels (csrc/pool.cpp):
// max: padding is -inf, a NaN wins, the first maximum on ties, idx the flat input index ih * W + iw (-1
// for a window all in the padding); its backward adds gy at idx (atomically: windows may share a cell).
// avg: the divisor counts the padding (count_include_pad) or only the input, windows clipped as PyTorch's;
// its backward is a gather over the windows covering each cell.
struct PoolGeom {
  int64_t P, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
};
std::string max_pool2d_forward(int dtype, const void* x, void* y, int64_t* idx, const PoolGeom& g, void* stream);
std::string max_pool2d_backward(int dtype, const void* gy, const int64_t* idx, void* gx, const PoolGeom& g,
                                void* stream);
std::string avg_pool2d_forward(int dtype, const void* x, void* y, const PoolGeom& g, bool count_include_pad,
                               void* stream);
std::string avg_pool2d_backward(int dtype, const void* gy, void* gx, const PoolGeom& g, bool count_include_pad,
                                void* stream);

// Adaptive average pooling (P, H, W) -> (P, OH, OW), as the CPU kernel: output cell (i, j) averages
// rows [floor(i H / OH), ceil((i + 1) H / OH)) and the same for columns.  The backward is a gather:
// each input cell sums its windows' shares (no atomics, a fixed order).
std::string adaptive_avg_pool2d_forward(int dtype, const void* x, void* y, int64_t P, int64_t H, int64_t W, int64_t OH,
                                        int64_t OW, void* stream);
std::string adaptive_avg_pool2d_backward(int dtype, const void* gy, void* gx, int64_t P, int64_t H, int64_t W,
                                         int64_t OH, int64_t OW, void* stream);

// Batch norm over x viewed as (N, C, S): a block per channel, statistics in float64.  weight, bias,
// running_mean / running_var may be null; training updates the running statistics in place (the
// unbiased variance), evaluation reads them.  -> y, mean, rstd (C each).  The backward: gx, gw, gb
// (each may be null), as the CPU kernel (csrc/norm.cpp).
std::string batch_norm_forward(int dtype, const void* x, const void* weight, const void* bias, void* running_mean,
                               void* running_var, void* y, void* mean, void* rstd, int64_t N, int64_t C, int64_t S,
                               bool training, double momentum, double eps, void* stream);
std::string batch_norm_backward(int dtype, const void* gy, const void* x, const void* weight, const void* mean,
                                const void* rstd, void* gx, void* gw, void* gb, int64_t N, int64_t C, int64_t S,
                                bool training, void* stream);
// Layer norm over the rows of (R, D): a block per row, statistics in float64; weight / bias (D) or null.
std::string layer_norm_forward(int dtype, const void* x, const void* weight, const void* bias, void* y, void* mean,
                               void* rstd, int64_t R, int64_t D, double eps, void* stream);
std::string layer_norm_backward(int dtype, const void* gy, const void* x, const void* weight, const void* mean,
                                const void* rstd, void* gx, void* gw, void* gb, int64_t R, int64_t D, void* stream);

// One LSTM step for B rows (the recurrent GEMMs are cuBLAS's, through CuPy): the pre-activations are
// xw (B, 4H) + hw (B, 4H), gates i, f, g, o; c (B, H) and h (B, H) the state, updated in place; out (B, H)
// the step's output; gates (B, 4H) and cs (B, H) saved for backward (each may be null).  A row with
// lengths[b] <= t (lengths may be null) keeps its state and outputs 0, as the CPU kernel.
std::string lstm_cell_forward(int dtype, const void* xw, const void* hw, void* c, void* h, void* out, void* gates,
                              void* cs, const int64_t* lengths, int64_t t, int64_t B, int64_t H, void* stream);
// Its backward for step t: dh (B, H) dL/dh_t from the later steps, dout (B, H) or null the output's
// gradient, dc (B, H) in place; -> dpre (B, 4H) the pre-activations' gradient and direct (B, H) the part of
// dL/dh_{t-1} not through W_hh (dh itself for a finished row, else 0).  cprev: the cell before the step.
std::string lstm_cell_backward(int dtype, const void* gates, const void* c, const void* cprev, const void* dout,
                               const void* dh, void* dc, void* dpre, void* direct, const int64_t* lengths, int64_t t,
                               int64_t B, int64_t H, void* stream);

// One GRU step (gates r, z, n), as the CPU kernel: xw (B, 3H) the input path with b_ih, hw (B, 3H) the
// hidden path without bias (cuBLAS's), bhh (3H) or null its bias, added here (r multiplies the n part of
// the hidden path, so the two are kept apart); h (B, H) the state, updated in place; out (B, H);
// gates (B, 3H) and hnl (B, H), the hidden path's n part with its bias, saved for backward (each may be
// null).  Finished rows as the LSTM's.
std::string gru_cell_forward(int dtype, const void* xw, const void* hw, const void* bhh, void* h, void* out,
                             void* gates, void* hnl, const int64_t* lengths, int64_t t, int64_t B, int64_t H,
                             void* stream);
// Its backward for step t: dh (B, H), dout (B, H) or null, hprev (B, H) the state before the step ->
// dxw (B, 3H) the input path's pre-activation gradient, dhw (B, 3H) the hidden path's (its n part
// times r), direct (B, H) the part of dL/dh_{t-1} not through W_hh (dh itself for a finished row).
std::string gru_cell_backward(int dtype, const void* gates, const void* hnl, const void* hprev, const void* dout,
                              const void* dh, void* dxw, void* dhw, void* direct, const int64_t* lengths, int64_t t,
                              int64_t B, int64_t H, void* stream);
// The simple RNN's step, act kTanh or kRelu: h = act(xw + hw), xw with both biases; gates (B, H) or null
// saves the new state (the CPU kernel's "gate").  Its backward: dpre (B, H) = (dh + dout) act'(out),
// direct as above.
std::string rnn_cell_forward(int act, int dtype, const void* xw, const void* hw, void* h, void* out, void* gates,
                             const int64_t* lengths, int64_t t, int64_t B, int64_t H, void* stream);
std::string rnn_cell_backward(int act, int dtype, const void* out, const void* dout, const void* dh, void* dpre,
                              void* direct, const int64_t* lengths, int64_t t, int64_t B, int64_t H, void* stream);

// Additive (Bahdanau) attention scores, qp (B, L, H), kp (B, S, H), v (H) -> s (B, L, S) = sum_h v_h
// tanh(qp + kp), without the (B, L, S, H) tensor.  The backward from gs (B, L, S): gq (B, L, H), gk (B, S,
// H), and vpart (B, L, H) whose sum over b and i is gv; any output may be null (not wanted).
std::string additive_attention_forward(int dtype, const void* qp, const void* kp, const void* v, void* s, int64_t B,
                                       int64_t L, int64_t S, int64_t H, void* stream);
std::string additive_attention_backward(int dtype, const void* gs, const void* qp, const void* kp, const void* v,
                                        void* gq, void* vpart, void* gk, int64_t B, int64_t L, int64_t S, int64_t H,
                                        void* stream);

// Scaled dot-product attention, the contract of csrc/attention.h: q (B, L, E), k (B, S, E), v (B, S, Ev)
// -> out (B, L, Ev), lse (B, L); mask (mb, ml, S) additive or null, batch b reading slice (b / div) % mb.
// E and Ev at most attention_max_features().  The backward writes gq, gk, gv whole and uses D (B*L
// scratch).
int attention_max_features();
std::string attention_forward(int dtype, const void* q, const void* k, const void* v, const void* mask, int64_t mb,
                              int64_t ml, int64_t div, void* out, void* lse, int64_t B, int64_t L, int64_t S,
                              int64_t E, int64_t Ev, bool causal, double scale, double dropout_p, uint64_t seed,
                              void* stream);
std::string attention_backward(int dtype, const void* gout, const void* q, const void* k, const void* v,
                               const void* out, const void* lse, const void* mask, int64_t mb, int64_t ml, int64_t div,
                               void* D, void* gq, void* gk, void* gv, int64_t B, int64_t L, int64_t S, int64_t E,
                               int64_t Ev, bool causal, double scale, double dropout_p, uint64_t seed, void* stream);

// what the module was compiled for, e.g. "sm_80 sm_90 compute_90"
const char* architectures();

}  // namespace fastdl::cuda
