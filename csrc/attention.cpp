// Scaled dot-product attention as the flash-attention papers do it, on the CPU: queries in blocks
// of kBQ rows, keys in blocks of kBK, scores of one block pair at a time (never the whole (L, S)
// matrix), an online softmax (running max and sum per row) in the forward, each row's
// log-sum-exp kept for the backward, which recomputes the probabilities block by block.  The
// products are single-threaded BLAS calls inside the pool's parts.
#include "attention.h"

#include <type_traits>

#include <vector>

#include "common.h"
#include "attention_packed.h"
#include "gemm.h"
#include "simd.h"

namespace fastdl {

namespace {
constexpr int64_t kBQ = 64;          // query rows per block
constexpr int64_t kWholeRow = 1024;  // up to this many keys a row's scores are one block
constexpr int64_t kBK = 512;         // keys per block beyond that

int64_t key_block(int64_t S) { return S <= kWholeRow ? std::max<int64_t>(S, 1) : kBK; }

// s (nq, nk) = scale q k^T for a block (E = 0: all zeros).
template <class T>
void scores(const T* q, const T* k, T* s, int64_t nq, int64_t nk, int64_t E, T scale) {
  if (E == 0) {
    std::fill(s, s + nq * nk, T(0));
    return;
  }
  gemm_ld<T>(false, true, nq, nk, E, scale, q, E, k, E, T(0), s, nk);
}
}  // namespace

template <class T>
void attn_drop_row(T* p, int64_t nk, int64_t b, int64_t row, int64_t j0, int64_t L, int64_t S, double pdrop,
                   uint64_t seed) {
  const T keep = T(1.0 / (1.0 - pdrop));
  const int64_t base = (b * L + row) * S + j0;
  for (int64_t c = 0; c < nk; ++c) p[c] *= counter_uniform(seed, base + c) >= pdrop ? keep : T(0);  // NaN stays NaN
}
template void attn_drop_row<float>(float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, uint64_t);
template void attn_drop_row<double>(double*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, uint64_t);

template <class T>
void attention_forward(const T* q, const T* k, const T* v, AttnMask<T> mask, T* out, T* lse, int64_t B, int64_t L,
                       int64_t S, int64_t E, int64_t Ev, bool causal, T scale, double dropout_p, uint64_t seed) {
  if constexpr (std::is_same_v<T, float>) {
    if (attention_packed_available())
      return attention_forward_packed(q, k, v, mask, out, lse, B, L, S, E, Ev, causal, scale, dropout_p, seed);
  }
  const int64_t nqb = (L + kBQ - 1) / kBQ, BK = key_block(S);
  const T ninf = -std::numeric_limits<T>::infinity();
  parallel_for(B * nqb, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> sb(kBQ * BK), m(kBQ), l(kBQ);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / nqb, i0 = (t % nqb) * kBQ, nq = std::min(kBQ, L - i0);
      const T* Q = q + (b * L + i0) * E;
      T* O = out + (b * L + i0) * Ev;
      std::fill(O, O + nq * Ev, T(0));
      std::fill(m.begin(), m.end(), ninf);
      std::fill(l.begin(), l.end(), T(0));
      const int64_t kend = causal ? std::min(S, i0 + nq) : S;
      for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        const int64_t nk = std::min(BK, kend - j0);
        scores<T>(Q, k + (b * S + j0) * E, sb.data(), nq, nk, E, scale);
        for (int64_t r = 0; r < nq; ++r) {
          T* s = sb.data() + r * nk;
          const T* mr = attn_mask_row(mask, b, i0 + r, S);
          const T alpha = SIMD(attn_online_row<T>)(s, nk, attn_valid_keys(causal, i0 + r, j0, nk), mr ? mr + j0 : nullptr,
                                                   &m[r], &l[r]);
          if (dropout_p > 0) attn_drop_row(s, nk, b, i0 + r, j0, L, S, dropout_p, seed);
          if (alpha != T(1)) {
            T* o = O + r * Ev;
            for (int64_t c = 0; c < Ev; ++c) o[c] *= alpha;
          }
        }
        if (Ev > 0) gemm_ld<T>(false, false, nq, Ev, nk, T(1), sb.data(), nk, v + (b * S + j0) * Ev, Ev, T(1), O, Ev);
      }
      for (int64_t r = 0; r < nq; ++r) {
        T* o = O + r * Ev;
        if (l[r] > T(0)) {
          const T inv = T(1) / l[r];
          for (int64_t c = 0; c < Ev; ++c) o[c] *= inv;
          lse[b * L + i0 + r] = m[r] + std::log(l[r]);
        } else {
          std::fill(o, o + Ev, l[r] == l[r] ? T(0) : l[r]);  // NaN scores stay NaN
          lse[b * L + i0 + r] = l[r] == l[r] ? ninf : l[r];
        }
      }
    }
  });
}

template <class T>
void attention_backward(const T* gout, const T* q, const T* k, const T* v, const T* out, const T* lse,
                        AttnMask<T> mask, T* gq, T* gk, T* gv, int64_t B, int64_t L, int64_t S, int64_t E,
                        int64_t Ev, bool causal, T scale, double dropout_p, uint64_t seed) {
  if constexpr (std::is_same_v<T, float>) {
    if (attention_packed_available())
      return attention_backward_packed(gout, q, k, v, out, lse, mask, gq, gk, gv, B, L, S, E, Ev, causal, scale,
                                       dropout_p, seed);
  }
  const int64_t BK = key_block(S);
  // One batch (head) per task: its dK and dV blocks and its dQ rows are written by this task alone.
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> sb(kBQ * BK), dp(kBQ * BK), D(L);
    for (int64_t b = b0; b < b1; ++b) {
      const T *Qb = q + b * L * E, *Kb = k + b * S * E, *Vb = v + b * S * Ev, *Gb = gout + b * L * Ev;
      T *gQ = gq + b * L * E, *gK = gk + b * S * E, *gV = gv + b * S * Ev;
      std::fill(gQ, gQ + L * E, T(0));
      std::fill(gK, gK + S * E, T(0));
      std::fill(gV, gV + S * Ev, T(0));
      for (int64_t i = 0; i < L; ++i) {
        const T *g = Gb + i * Ev, *o = out + (b * L + i) * Ev;
        T d = 0;
        for (int64_t c = 0; c < Ev; ++c) d += g[c] * o[c];
        D[i] = d;
      }
      for (int64_t j0 = 0; j0 < S; j0 += BK) {
        const int64_t nkb = std::min(BK, S - j0);
        for (int64_t i0 = causal ? (j0 / kBQ) * kBQ : 0; i0 < L; i0 += kBQ) {
          const int64_t nq = std::min(kBQ, L - i0);
          const int64_t nk = causal ? std::min(nkb, i0 + nq - j0) : nkb;  // causally visible keys of the block
          scores<T>(Qb + i0 * E, Kb + j0 * E, sb.data(), nq, nk, E, scale);
          for (int64_t r = 0; r < nq; ++r) {
            const T* mr = attn_mask_row(mask, b, i0 + r, S);
            SIMD(attn_prob_row<T>)(sb.data() + r * nk, nk, attn_valid_keys(causal, i0 + r, j0, nk), mr ? mr + j0 : nullptr,
                                   lse[b * L + i0 + r]);
          }
          if (Ev > 0) gemm_ld<T>(false, true, nq, nk, Ev, T(1), Gb + i0 * Ev, Ev, Vb + j0 * Ev, Ev, T(0), dp.data(), nk);
          else std::fill(dp.begin(), dp.begin() + nq * nk, T(0));
          for (int64_t r = 0; r < nq; ++r) {
            T *p = sb.data() + r * nk, *d = dp.data() + r * nk;
            if (dropout_p > 0) attn_drop_row(d, nk, b, i0 + r, j0, L, S, dropout_p, seed);
            SIMD(attn_ds_row<T>)(p, d, nk, D[i0 + r], scale);
            if (dropout_p > 0) attn_drop_row(p, nk, b, i0 + r, j0, L, S, dropout_p, seed);
          }
          if (Ev > 0)
            gemm_ld<T>(true, false, nk, Ev, nq, T(1), sb.data(), nk, Gb + i0 * Ev, Ev, T(1), gV + j0 * Ev, Ev);
          if (E > 0) {
            gemm_ld<T>(false, false, nq, E, nk, T(1), dp.data(), nk, Kb + j0 * E, E, T(1), gQ + i0 * E, E);
            gemm_ld<T>(true, false, nk, E, nq, T(1), dp.data(), nk, Qb + i0 * E, E, T(1), gK + j0 * E, E);
          }
        }
      }
    }
  });
}

template <class T> void masked_softmax_forward(const T* x, const uint8_t* mask, T* y, int64_t R, int64_t n, T scale) {
  parallel_for(R, (1 << 14) / std::max<int64_t>(n, 1) + 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) SIMD(masked_softmax_row<T>)(x + r * n, mask ? mask + r * n : nullptr, y + r * n, n, scale);
  });
}

template <class T> void masked_softmax_backward(const T* gy, const T* y, T* gx, int64_t R, int64_t n, T scale) {
  parallel_for(R, (1 << 14) / std::max<int64_t>(n, 1) + 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T *g = gy + r * n, *p = y + r * n;
      T s = 0;
      for (int64_t c = 0; c < n; ++c) s += g[c] * p[c];
      T* o = gx + r * n;
      for (int64_t c = 0; c < n; ++c) o[c] = scale * p[c] * (g[c] - s);
    }
  });
}

template <class T>
void additive_attention_forward(const T* qp, const T* kp, const T* v, T* scores, int64_t B, int64_t L, int64_t S,
                                int64_t H) {
  parallel_for(B * L, (1 << 15) / std::max<int64_t>(S * H, 1) + 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      SIMD(additive_row<T>)(qp + r * H, kp + (r / std::max<int64_t>(L, 1)) * S * H, v, scores + r * S, S, H);
  });
}

template <class T>
void additive_attention_backward(const T* gs, const T* qp, const T* kp, const T* v, T* gqp, T* gkp, T* gv, int64_t B,
                                 int64_t L, int64_t S, int64_t H) {
  // One batch per part: its key-gradient rows collect every query row's contribution; gv is summed
  // from one partial per part, in part order (the same result for any thread count).
  const int64_t nparts = std::max<int64_t>(1, std::min<int64_t>(B, max_threads()));
  std::vector<T> gvp(nparts * H, T(0));
  parallel_parts(nparts, [&](int64_t part, int64_t np) {
    std::vector<T> gq_tmp(gqp ? 0 : H), gk_tmp(gkp ? 0 : S * H);
    T* pv = gvp.data() + part * H;
    const int64_t b0 = B * part / np, b1 = B * (part + 1) / np;
    for (int64_t b = b0; b < b1; ++b) {
      T* gK = gkp ? gkp + b * S * H : gk_tmp.data();
      std::fill(gK, gK + S * H, T(0));
      for (int64_t i = 0; i < L; ++i) {
        const int64_t r = b * L + i;
        T* gQ = gqp ? gqp + r * H : gq_tmp.data();
        std::fill(gQ, gQ + H, T(0));
        SIMD(additive_row_backward<T>)(qp + r * H, kp + b * S * H, v, gs + r * S, gQ, gK, pv, S, H);
      }
    }
  });
  if (gv) {
    std::fill(gv, gv + H, T(0));
    for (int64_t p = 0; p < nparts; ++p)
      for (int64_t h = 0; h < H; ++h) gv[h] += gvp[p * H + h];
  }
}

#define FASTDL_INSTANTIATE(T)                                                                                         \
  template void attention_forward<T>(const T*, const T*, const T*, AttnMask<T>, T*, T*, int64_t, int64_t, int64_t,     \
                                     int64_t, int64_t, bool, T, double, uint64_t);                                    \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, AttnMask<T>, T*, T*, \
                                      T*, int64_t, int64_t, int64_t, int64_t, int64_t, bool, T, double, uint64_t);    \
  template void masked_softmax_forward<T>(const T*, const uint8_t*, T*, int64_t, int64_t, T);                          \
  template void masked_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, T);                               \
  template void additive_attention_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t);   \
  template void additive_attention_backward<T>(const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t,   \
                                               int64_t, int64_t);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
