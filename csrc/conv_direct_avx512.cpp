// The AVX-512 build of the direct convolution: this file alone is compiled with -mavx512f, and
// conv.cpp only calls it when the CPU reports AVX-512F.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <stdexcept>
#include <vector>

#include "common.h"
#include "conv_direct.h"
#include "gemm_packed.h"

// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 shuffle
// wrappers as "maybe uninitialized" once they are inlined; nothing of ours is.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace fastdl {
namespace avx512 {
namespace {
struct V {
  using reg = __m512;
  static constexpr int n = 16;
  static constexpr int kRegs = 32;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static void stream(float* p, reg v) { _mm512_stream_ps(p, v); }  // p on a whole vector's boundary
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg fnmadd(reg a, reg b, reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg cell_sigmoid(reg x);  // the recurrent cells' own (below)
  static reg cell_tanh(reg x);
  static void store_n(float* p, reg v, int k) { _mm512_mask_storeu_ps(p, __mmask16((1u << k) - 1), v); }
  // p[2 * i] = v[i] for i < k, the odd places untouched: each half spread to the even lanes
  static void store_step2(float* p, reg v, int k) {
    const int lo = std::min(k, 8), hi = k - lo;
    _mm512_mask_storeu_ps(p, __mmask16(((1u << (2 * lo)) - 1) & 0x5555u), _mm512_maskz_expand_ps(0x5555, v));
    if (hi > 0)
      _mm512_mask_storeu_ps(p + 16, __mmask16(((1u << (2 * hi)) - 1) & 0x5555u),
                            _mm512_maskz_expand_ps(0x5555, _mm512_shuffle_f32x4(v, v, 0xEE)));
  }
  // r[i][j] <-> r[j][i]: pairs of rows interleaved, then pairs of pairs, then 128-bit lanes twice
  static void transpose(reg* r) {
    reg t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
      t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
      t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
      t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 8; ++i) {
      r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
      r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
  }
};

// simd_math.h's vector math: this namespace's own copies
#include "simd_math.h"
#include "conv_direct_kernels.inc"
#include "gemm_packed_kernels.inc"
}  // namespace
namespace {
// The recurrent cells' own sigmoid and tanh, from e = exp(-|x|) (exp16_nonpos: the shifter and a
// degree-5 polynomial, 1.8e-7 relative) and one reciprocal, the sign applied after: about 20
// operations each, where the general sigmoid16 and tanh16 take about 24 and 38 (tanh16 blends in a
// polynomial for small arguments).  Both stay within 2.5e-7 absolute of float64, measured over
// [-30, 30]; tanh's small arguments lose relative accuracy in 1 - e^{-2|x|} (1e-5 relative at
// tanh = 1e-3, 1e-2 at 1e-6), below the absolute error the pre-activation's own sum of products
// carries.  A NaN stays NaN.  LSTM T=100 B=64 256->512 forward 146 -> 138 ms, T=50 10.2 -> 9.6 ms.
__m512 V::cell_sigmoid(__m512 x) {
  const __m512 e = exp16_nonpos(neg16(abs16(x)));  // e^{-|x|}
  const __m512 r = recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
  return _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), r, e);  // x < 0: e / (1 + e)
}
__m512 V::cell_tanh(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = exp16_nonpos(_mm512_mul_ps(_mm512_set1_ps(-2.0f), abs16(x)));  // e^{-2|x|}
  return with_sign16(_mm512_mul_ps(_mm512_sub_ps(one, e), recip16(_mm512_add_ps(one, e))), x);
}
}  // namespace

#define FASTDL_LSTM_STEP_TILE 1  // packed_entries.inc's fused LSTM step: this build's alone (gemm_packed.h)
#include "packed_entries.inc"
void direct_conv(const DirectConvArgs& a) { run(a); }
void direct_gw(const DirectGwArgs& a) { gw_run(a); }
void to_pixels(const float* gy, int64_t Kg, int64_t ohw, float* gyT) { to_pixels_impl(gy, Kg, ohw, gyT); }

// C (M, N) (+)= op(A) op(B): A (K, M; lda) given transposed (AT) or A (M, K; lda), B (K, N; ldb) or
// given transposed (BT: (N, K; ldb)), C (M, N; ldc) read only with `acc` (gemm_packed.h).  Blocks of
// kKC rows of K: B's block as 64-wide panels (row segments copied, or with BT 16 x 16 blocks of B
// transposed), then per kMC rows of C the tiles of six of its rows against each panel.  A^T: its
// columns as micro-panels of six first (each k's six values adjacent, copied with masked loads and
// stores, k after k so A is read once, row by row), a tile_at call each (lda = its rows: the tile's
// best operand).  A: its rows broadcast in place.  A column block of C narrower than a panel goes
// through a scratch tile.
// With `apre` (A^T only): A^T already in micro-panels of six over the whole of K (gemm_at_panels' layout),
// read in place instead of copied per block; with `bpre`, B already as its blocks' panels, one block
// after another (pack_b_panels' layout), read in place.
constexpr int64_t MR = 6, PW = 64, kKC = 384, kMC = 48, kNC = 512;  // (pack_*_panels lay out the same)
template <bool AT, bool BT>
void gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, bool acc,
                 const float* bias, float* C, int64_t ldc, const float* apre = nullptr, const float* bpre = nullptr) {
  // on 64-byte boundaries (avector): the panels' rows are whole cache lines (a split load costs two)
  thread_local avector<float> bbuf, abuf;
  const int64_t KC = std::min(kKC, K);
  auto grown = [](avector<float>& buf, size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  };
  float* const Bp = bpre ? nullptr : grown(bbuf, size_t(KC * ((std::min(N, kNC) + PW - 1) / PW * PW)));
  float* const Ap = AT && !apre ? grown(abuf, size_t(KC * kMC)) : nullptr;
  alignas(64) float ct[MR * PW], bt[PW] = {};
  for (int64_t n0 = 0; n0 < N; n0 += kNC) {
    const int64_t nc = std::min(kNC, N - n0);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      const float* const Bk = bpre ? bpre + n0 * K + k0 * ((nc + 15) / 16 * 16) : Bp;
      for (int64_t p = 0; !bpre && p < nc; p += PW) {  // B's rows k0.. as panels (the last as many vectors wide as
        const int64_t n = std::min(PW, nc - p), w = (n + 15) / 16 * 16;  // it needs), zero past N
        float* d = Bp + p * kc;
        if (BT) {  // column k of the panel is row segment k0.. of B's rows n0 + p..
          const float* src = B + (n0 + p) * ldb + k0;
          const int64_t n16 = n / 16 * 16, k16 = kc / 16 * 16;
          for (int64_t c = 0; c < n16; c += 16)
            for (int64_t k = 0; k < k16; k += 16) transpose16(src + c * ldb + k, ldb, d + k * w + c, w);
          for (int64_t k = 0; k < kc; ++k)
            for (int64_t c = k < k16 ? n16 : 0; c < w; ++c) d[k * w + c] = c < n ? src[c * ldb + k] : 0.0f;
          continue;
        }
        const __mmask16 tail = __mmask16((1u << (n % 16)) - 1);
        for (int64_t k = 0; k < kc; ++k) {
          const float* src = B + (k0 + k) * ldb + n0 + p;
          float* dk = d + k * w;
          int64_t c = 0;
          for (; c + 16 <= n; c += 16) _mm512_storeu_ps(dk + c, _mm512_loadu_ps(src + c));
          if (c < w) _mm512_storeu_ps(dk + c, _mm512_maskz_loadu_ps(tail, src + c));
        }
      }
      for (int64_t m0 = 0; m0 < M; m0 += kMC) {
        const int64_t mc = std::min(kMC, M - m0), full = mc / MR * MR, rest = mc - full;
        if (AT && !apre) {
          const __mmask16 six = 0x3F, last = __mmask16((1u << rest) - 1);
          for (int64_t k = 0; k < kc; ++k) {
            const float* src = A + (k0 + k) * lda + m0;
            for (int64_t r = 0; r < full; r += MR)
              _mm512_mask_storeu_ps(Ap + r * kc + k * MR, six, _mm512_maskz_loadu_ps(six, src + r));
            if (rest) _mm512_mask_storeu_ps(Ap + full * kc + k * rest, last, _mm512_maskz_loadu_ps(last, src + full));
          }
        }
        const bool add = acc || k0 > 0;
        for (int64_t p = 0; p < nc; p += PW) {
          const int64_t n = std::min(PW, nc - p);
          const int nv = int((n + 15) / 16);
          const float* bp = Bk + p * kc;
          for (int64_t r = 0; r < mc; r += MR) {
            const int mr = int(std::min(MR, mc - r));
            const float* a = apre ? apre + (m0 + r) * K + k0 * mr : AT ? Ap + r * kc : A + (m0 + r) * lda + k0;
            const int64_t la = AT ? mr : lda;
            float* c = C + (m0 + r) * ldc + n0 + p;
            float* dst = n % 16 ? ct : c;  // whole vectors only: a ragged edge through the scratch tile
            const int64_t ldd = n % 16 ? PW : ldc;
            if (add && dst == ct)
              for (int i = 0; i < mr; ++i) std::memcpy(ct + i * PW, c + i * ldc, sizeof(float) * size_t(n));
            // the first block's accumulators start from the bias (the ragged panel's read past N, from a
            // copy padded to whole vectors)
            const float* init = nullptr;
            if (!add && bias) {
              init = bias + n0 + p;
              if (n % 16) {
                std::memcpy(bt, init, sizeof(float) * size_t(n));
                init = bt;
              }
            }
            if (add)
              packed_tile_run<true, AT>(a, la, bp, kc, dst, ldd, 16, mr, nv);
            else
              packed_tile_run<false, AT>(a, la, bp, kc, dst, ldd, 16, mr, nv, init);
            if (dst == ct)
              for (int i = 0; i < mr; ++i) std::memcpy(c + i * ldc, ct + i * PW, sizeof(float) * size_t(n));
          }
        }
      }
    }
  }
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          bool acc, const float* bias, float* C, int64_t ldc) {
  if (ta && tb) throw std::invalid_argument("gemm: A^T B^T has no packed kernel");
  if (ta)
    gemm_packed<true, false>(M, N, K, A, lda, B, ldb, acc, bias, C, ldc);
  else if (tb)
    gemm_packed<false, true>(M, N, K, A, lda, B, ldb, acc, bias, C, ldc);
  else
    gemm_packed<false, false>(M, N, K, A, lda, B, ldb, acc, bias, C, ldc);
}
void gemm_at_panels(int64_t M, int64_t N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C,
                    int64_t ldc, const float* Bpre) {
  gemm_packed<true, false>(M, N, K, nullptr, 0, B, ldb, false, nullptr, C, ldc, Ap, Bpre);
}
// gemm_packed's panels of B laid out block after block (blocks of kNC columns, then of KC rows: the
// order the product takes them): the floats they take in all, and B's rows put there.
int64_t b_panels_size(int64_t N, int64_t K) {
  int64_t size = 0;
  for (int64_t n0 = 0; n0 < N; n0 += kNC) size += K * ((std::min(kNC, N - n0) + 15) / 16 * 16);
  return size;
}
void pack_b_panels(const float* src, int64_t n_begin, int64_t count, int64_t k, int64_t N, int64_t K, float* dst) {
  const int64_t KC = std::min(kKC, K), k0 = k / KC * KC, kc = std::min(KC, K - k0);
  for (int64_t n = n_begin; n < n_begin + count;) {
    const int64_t n0 = n / kNC * kNC, nc = std::min(kNC, N - n0), ncp = (nc + 15) / 16 * 16;
    const int64_t p = (n - n0) / PW * PW, w = std::min(PW, ncp - p);
    float* row = dst + n0 * K + k0 * ncp + p * kc + (k - k0) * w;  // the panel's row k
    const int64_t c0 = n - n0 - p, m = std::min(n_begin + count - n, std::min(PW, nc - p) - c0);
    std::memcpy(row + c0, src + (n - n_begin), sizeof(float) * size_t(m));
    n += m;
    if (n == N) std::fill(row + c0 + m, row + w, 0.0f);  // the last panel's columns past N
  }
}
void pack_at_panels(const float* src, int64_t lds, int64_t rows, int64_t M, int64_t k0, int64_t K, float* dst) {
  // eight rows' six values are three whole vectors, put together by permutes and stored whole, and
  // (where the lines are whole: K a multiple of 16, k0 of 8) past the caches: the product reads them
  // once, much later.  A masked store per row, as the product's own packing does, took 4.9% of an
  // LSTM T=50 B=32 forward+backward's samples (the product's packing had taken 3%); whole stores
  // 2.0%, streamed 1.0%.
  const __m512i i01 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21, 0, 0, 0, 0),
                i012 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19),
                i23 = _mm512_setr_epi32(4, 5, 16, 17, 18, 19, 20, 21, 0, 0, 0, 0, 0, 0, 0, 0),
                i234 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 0, 0),
                i5 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
                i56 = _mm512_setr_epi32(2, 3, 4, 5, 16, 17, 18, 19, 20, 21, 0, 0, 0, 0, 0, 0),
                i567 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 20, 21);
  // eight rows at a time along every panel: the rows (lds apart, often 4 KB: one L1 set) stay in L1
  static_assert(MR == 6, "pack_at_panels packs the product's micro-panels of six");
  const __mmask16 six = 0x3F;
  const int64_t M6 = M / 6 * 6, r8 = rows / 8 * 8;
  const bool stream = (reinterpret_cast<uintptr_t>(dst) | uintptr_t(K * 4) | uintptr_t(k0 * 24)) % 64 == 0;
  for (int64_t r = 0; r < r8; r += 8)
    for (int64_t m = 0; m < M6; m += 6) {
      __m512 v[8];
      for (int i = 0; i < 8; ++i) v[i] = _mm512_maskz_loadu_ps(six, src + (r + i) * lds + m);
      const __m512 o0 = _mm512_permutex2var_ps(_mm512_permutex2var_ps(v[0], i01, v[1]), i012, v[2]);
      __m512 o1 = _mm512_permutex2var_ps(_mm512_permutex2var_ps(v[2], i23, v[3]), i234, v[4]);
      o1 = _mm512_mask_permutexvar_ps(o1, 0xC000, i5, v[5]);
      const __m512 o2 = _mm512_permutex2var_ps(_mm512_permutex2var_ps(v[5], i56, v[6]), i567, v[7]);
      float* d = dst + m * K + (k0 + r) * 6;
      if (stream) {
        _mm512_stream_ps(d, o0);
        _mm512_stream_ps(d + 16, o1);
        _mm512_stream_ps(d + 32, o2);
      } else {
        _mm512_storeu_ps(d, o0);
        _mm512_storeu_ps(d + 16, o1);
        _mm512_storeu_ps(d + 32, o2);
      }
    }
  for (int64_t m = 0; m < M; m += 6) {  // the rest: row by row
    const int64_t w = std::min<int64_t>(6, M - m);
    const __mmask16 mask = __mmask16((1u << w) - 1);
    float* d = dst + m * K + k0 * w;
    for (int64_t r = m < M6 ? r8 : 0; r < rows; ++r)
      _mm512_mask_storeu_ps(d + r * w, mask, _mm512_maskz_loadu_ps(mask, src + r * lds + m));
  }
  if (stream) _mm_sfence();
}
}  // namespace avx512
}  // namespace fastdl
