// A product whose right operand is packed once and used many times: the recurrent GEMM of an RNN
// step, h (B, H) @ W_hh^T, where BLAS would pack W_hh again at every step.  Per-ISA builds of the
// tile kernel (gemm_packed_kernels.inc, compiled into the AVX2 and AVX-512 objects of the direct
// convolution), chosen at run time with the same width: 16 (AVX-512), 8 (AVX2) or 0 (none).
#pragma once
#include <cstdint>

namespace fastdl {

// C (mr, nv * width) += A (mr, K; rows lda apart) @ Bp (K, nv * width), Bp packed row after row;
// C's rows are ldc apart and the width-long vectors of a row ldv apart (width: packed; larger: e.g.
// one gate of every row after another).  mr <= rows(nv), nv in {1, 2, 3, 4}.
struct PackedKernels {
  void (*tile)(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv, int mr,
               int nv);
  int (*rows)(int nv);  // the most rows one tile takes for nv vectors per row
  // the same with C = A @ Bp (C not read)
  void (*tile_set)(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv,
                   int mr, int nv);
  // The LSTM cell over n (row, unit) pairs, n a multiple of the width: a holds the pre-activations of
  // i, f, g, o (n each, gate after gate) and is activated in place; c becomes f c + i g, h = o tanh(c).
  void (*lstm_cell)(float* a, float* c, float* h, int64_t n);
  // The same with the gates gs apart (a + g * gs).
  void (*lstm_cell_strided)(float* a, int64_t gs, float* c, float* h, int64_t n);
  // dst[j * ldd + i] = src[i * lds + j] for a 16 x 16 block
  void (*transpose16)(const float* src, int64_t lds, float* dst, int64_t ldd);
  // Its backward for one row of n units (n a multiple of the width):
  // g / dg the activated gates and their pre-activation gradients (gate after gate, n apart), c and
  // cprev the cells after and before the step, dh += dout (dout may be null), dc the cell gradient
  // (replaced by its part for the step before), dprev zeroed (the recurrent product adds to it).
  void (*lstm_cell_backward)(const float* g, const float* c, const float* cprev, const float* dout, float* dh,
                             float* dc, float* dg, float* dprev, int64_t n);
  // The GRU cell over n (unit, column) pairs: a holds the pre-activations
  // of r, z and n (gs apart; n's input path only) and is activated in place, hn the hidden path's n part
  // (W_hn h + b_hn), hprev the state before the step; h = (1 - z) n + z hprev, n = tanh(a_n + r hn).
  void (*gru_cell_strided)(float* a, int64_t gs, const float* hn, const float* hprev, float* h, int64_t n);
  // tile with A given transposed: C (mr, nv * width) += A^T @ Bp, A's column r (A[k * lda + r]) being
  // row r of the left operand (attention's P^T dO and dS^T Q without transposing P and dS)
  void (*tile_at)(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv, int mr,
                  int nv);
  // C (M, N) = op(A) op(B) (+ bias, one value per column, if not null), or += with `acc` (bias
  // unused): A (M, K; lda) or, with ta, given as its transpose (K, M; lda); B (K, N; ldb) or, with tb,
  // (N, K; ldb); not both transposed; C's rows ldc apart.  Null in a build without it.  The tile kernel
  // on packed blocks (gemm.cpp routes to it): B's block as 64-wide panels, A's rows broadcast in
  // place, or A^T copied into micro-panels of six first.
  void (*gemm)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
               int64_t ldb, bool acc, const float* bias, float* C, int64_t ldc);
  // dst[k * ldd + r] = src[r * lds + k] for r < rows (at most 16) and k < K: rows of a weight as the
  // columns of a packed panel (the recurrent layers' per-call packing of W_ih and W_hh)
  void (*transpose_rows)(const float* src, int64_t lds, int rows, int64_t K, float* dst, int64_t ldd);
  // out[b * ldo + j] (+= with acc, else =) W's row j . X's row b over K, for j < rows and b < nb (1 to
  // 4): W (rows, K; ldw) read once as it is, no packing (a recurrent step at a batch of one to four,
  // where packing W would cost two more passes over it than the product takes)
  void (*rows_dot)(const float* W, int64_t ldw, int64_t rows, const float* X, int64_t ldx, int nb, int64_t K,
                   float* out, int64_t ldo, bool acc);
  // tile_at with C = A^T @ Bp (C not read)
  void (*tile_at_set)(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc, int64_t ldv,
                      int mr, int nv);
  // C (M, N) = A^T B with A^T given already in gemm's micro-panels of six of C's rows over the whole
  // of K (Ap: the panel of rows [m, m + w), w = min(6, M - m), m a multiple of 6, starts at Ap + m K and
  // holds (K, w), row k's w values adjacent), so the product copies none of it; B (K, N; ldb).  Null in
  // a build without it.  pack_at_panels writes that layout: rows [k0, k0 + rows) of A^T (M wide, lds
  // apart) into the panels of a K-long A^T at dst, whose rows may arrive in any order and from any
  // thread (a recurrent backward's gate gradients, step by step, packed while in cache).
  void (*gemm_at_panels)(int64_t M, int64_t N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C,
                         int64_t ldc, const float* Bpre);
  void (*pack_at_panels)(const float* src, int64_t lds, int64_t rows, int64_t M, int64_t k0, int64_t K, float* dst);
  // B given already as the product's panels instead (Bpre, not null; B unused): pack_b_panels writes
  // count values of B's row k from column n_begin there, rows in any order (the columns past N of the
  // last panel zeroed with the row's last segment), b_panels_size(N, K) floats in all
  void (*pack_b_panels)(const float* src, int64_t n_begin, int64_t count, int64_t k, int64_t N, int64_t K,
                        float* dst);
  int64_t (*b_panels_size)(int64_t N, int64_t K);
  // dst[r * ldd + j] = src[r * lds + j] for r < rows, j < n, stored past the caches (whole vectors on
  // their boundaries; the rest as usual): what is written now and read much later
  void (*copy_rows_stream)(const float* src, int64_t lds, int64_t rows, int64_t n, float* dst, int64_t ldd);
  // transpose_rows with row r of the source at src[r]: dst[k * ldd + r] = src[r][k].  Null in a build
  // without lstm_step_tile, its one user.
  void (*transpose_row_ptrs)(const float* const* src, int rows, int64_t K, float* dst, int64_t ldd);
  // One tile of an LSTM step, the batch along the vectors: nu (at most lstm_step_units(nv)) units' four
  // gates for nv vectors of columns (w apart: the rows of x^T, h^T, c and h), from wpi (KI, 4 nu) @
  // x^T (KI, nv vectors) + wph (KH, 4 nu) @ h^T, the panels' column q nu + u being gate q of unit u;
  // then c = f c + i g and h = o tanh(c) for those units, and with g not null the activated gates
  // (gate q of unit u at g + q gs + u w).  Null in a build without it: the AVX-512 build's alone (AVX2's
  // 16 registers hold one unit's four gates at two vectors, 8 accumulators: LSTM T=50 B=32 forward,
  // 1 thread, medians 13.9-14.2 ms against 12.2-13.4 ms by the separate products and cell).
  void (*lstm_step_tile)(const float* wpi, int64_t KI, const float* xt, const float* wph, int64_t KH,
                         const float* ht, int64_t w, float* c, float* h, float* g, int64_t gs, int nu, int nv);
  int (*lstm_step_units)(int nv);
};

#define FASTDL_PACKED_DECLARE                                                                              \
  void packed_tile(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc,         \
                   int64_t ldv, int mr, int nv);                                                           \
  int packed_rows(int nv);                                                                                 \
  void packed_tile_set(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc,     \
                       int64_t ldv, int mr, int nv);                                                       \
  void packed_tile_at(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc,      \
                      int64_t ldv, int mr, int nv);                                                        \
  void packed_tile_at_set(const float* A, int64_t lda, const float* Bp, int64_t K, float* C, int64_t ldc,  \
                          int64_t ldv, int mr, int nv);                                                    \
  void transpose_rows(const float* src, int64_t lds, int rows, int64_t K, float* dst, int64_t ldd);        \
  void rows_dot(const float* W, int64_t ldw, int64_t rows, const float* X, int64_t ldx, int nb, int64_t K,  \
                float* out, int64_t ldo, bool acc);                                                         \
  void copy_rows_stream(const float* src, int64_t lds, int64_t rows, int64_t n, float* dst, int64_t ldd);  \
  double fma_peak(int64_t iters);
#ifdef FASTDL_HAVE_AVX512_BUILD
namespace avx512 {
FASTDL_PACKED_DECLARE
void transpose_row_ptrs(const float* const* src, int rows, int64_t K, float* dst, int64_t ldd);
void lstm_step_tile(const float* wpi, int64_t KI, const float* xt, const float* wph, int64_t KH, const float* ht,
                    int64_t w, float* c, float* h, float* g, int64_t gs, int nu, int nv);
int lstm_step_units(int nv);
void lstm_cell(float* a, float* c, float* h, int64_t n);
void lstm_cell_strided(float* a, int64_t gs, float* c, float* h, int64_t n);
void gru_cell_strided(float* a, int64_t gs, const float* hn, const float* hprev, float* h, int64_t n);
void transpose16(const float* src, int64_t lds, float* dst, int64_t ldd);
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          bool acc, const float* bias, float* C, int64_t ldc);
void gemm_at_panels(int64_t M, int64_t N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C,
                    int64_t ldc, const float* Bpre);
void pack_b_panels(const float* src, int64_t n_begin, int64_t count, int64_t k, int64_t N, int64_t K, float* dst);
int64_t b_panels_size(int64_t N, int64_t K);
void pack_at_panels(const float* src, int64_t lds, int64_t rows, int64_t M, int64_t k0, int64_t K, float* dst);
void lstm_cell_backward(const float* g, const float* c, const float* cprev, const float* dout, float* dh, float* dc,
                        float* dg, float* dprev, int64_t n);
}
#endif
#ifdef FASTDL_HAVE_AVX2_BUILD
namespace avx2 {
FASTDL_PACKED_DECLARE
void lstm_cell(float* a, float* c, float* h, int64_t n);
void lstm_cell_strided(float* a, int64_t gs, float* c, float* h, int64_t n);
void gru_cell_strided(float* a, int64_t gs, const float* hn, const float* hprev, float* h, int64_t n);
void transpose16(const float* src, int64_t lds, float* dst, int64_t ldd);
void lstm_cell_backward(const float* g, const float* c, const float* cprev, const float* dout, float* dh, float* dc,
                        float* dg, float* dprev, int64_t n);
}
#endif
#undef FASTDL_PACKED_DECLARE

// The build for width 16 or 8 (conv_direct_width() says which the CPU runs); throws for another.
const PackedKernels& packed_kernels(int width);
// FLOP/s of independent FMA chains on one core with the widest build the CPU runs (0 without one).
double fma_peak_flops(int64_t iters);

}  // namespace fastdl
