// Packed float32 attention (attention_packed.h).  Panels of PW = NV * width columns: up to 64 with
// AVX-512 (four vectors a row of a tile), up to 24 with AVX2 (three), of the count that pads least.  Per head:
//   Kt  (E, S) in key panels      scores  S_ij  = Q_i @ Kt_j, Kt = scale log2(e) K^T: the scores in base 2,
//                                 so the rows' exponentials are 2^x (attn_online_row2, attn_prob_row2);
//                                 Kt = scale K^T and base e with an additive mask (base2_rows)
//   Vr  (S, Ev) in column panels  output  O_i  += P_ij @ Vr_j
// and in the backward also Vt (Ev, S), Kr (S, E), Qr (L, E), dOr (L, Ev) for
//   dP = dO_i @ Vt_j,  dV_j += P^T dO_i,  dQ_i += dS K_j,  dK_j += dS^T Q_i.
// Accumulators are padded to whole panels and copied out at the end.
#include "attention_packed.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <new>
#include <vector>

#include "common.h"
#include "conv_direct.h"
#include "gemm_packed.h"
#include "simd.h"

namespace fastdl {

#ifdef FASTDL_HAVE_AVX512_BUILD
namespace avx512act {  // act_avx512.cpp
template <class T> T attn_online_row(T*, int64_t, int64_t, const T*, T*, T*);
template <class T> void attn_prob_row(T*, int64_t, int64_t, const T*, T);
template <class T> T attn_online_row2(T*, int64_t, int64_t, const T*, T*, T*);
template <class T> void attn_prob_row2(T*, int64_t, int64_t, const T*, T);
template <class T> void attn_ds_row(const T*, T*, int64_t, T, T);
template <class T> void attn_scale_row(const T*, T, T*, int64_t);
}  // namespace avx512act
#endif

namespace {
constexpr int64_t kBQ = 64;           // query rows per block
constexpr int64_t kWholeRow = 1024;  // up to this many keys one block holds a whole row
constexpr int64_t kBKMax = 512;      // keys per block beyond that (rounded down to whole panels)
// log2(e), folded into the packed keys with the scale, so the rows' exponentials are base 2: the
// reduction is an add and two subtractions instead of base e's three FMA-port operations (SDPA L=2048
// forward, 1 thread, the libraries' builds alternating in separate processes: minimum 344-346 ->
// 340-342 ms, median 347-369 -> 342-348 ms); and ln 2, to save the log-sum-exp in natural units.
// Not with an additive mask: its values would be scaled too, and a finite one beyond FLT_MAX / log2 e
// (float32's lowest, as many libraries mask padding with) would overflow to -inf, turning a row that
// attends uniformly among such keys into a row that attends to nothing.
inline bool base2_rows(const AttnMask<float>& mask) { return mask.data == nullptr; }
constexpr float kLog2e = 1.44269504088896341f, kLn2 = 0.693147180559945309f;

// The tile kernel for the CPU's width, and the attention rows (the AVX2 build where the CPU has it;
// an AVX-512 build of the rows measured no faster).
struct Tile {
  const PackedKernels* pk;
  int nv, mr;
  int64_t w, pw;
  float (*online_row)(float*, int64_t, int64_t, const float*, float*, float*);
  void (*prob_row)(float*, int64_t, int64_t, const float*, float);
  void (*ds_row)(const float*, float*, int64_t, float, float);
  void (*scale_row)(const float*, float, float*, int64_t);
};

// b2: the rows' exponentials in base 2 (the scores times log2 e: kLog2e below)
Tile tile_of(int width, bool b2) {
  Tile t;
  t.pk = &packed_kernels(width);
  t.online_row = b2 ? SIMD(attn_online_row2<float>) : SIMD(attn_online_row<float>);
  t.prob_row = b2 ? SIMD(attn_prob_row2<float>) : SIMD(attn_prob_row<float>);
  t.ds_row = SIMD(attn_ds_row<float>);
  t.scale_row = SIMD(attn_scale_row<float>);
#ifdef FASTDL_HAVE_AVX512_BUILD
  if (width == 16) {
    t.online_row = b2 ? avx512act::attn_online_row2<float> : avx512act::attn_online_row<float>;
    t.prob_row = b2 ? avx512act::attn_prob_row2<float> : avx512act::attn_prob_row<float>;
    t.ds_row = avx512act::attn_ds_row<float>;
    t.scale_row = avx512act::attn_scale_row<float>;
  }
#endif
  t.nv = width == 16 ? 4 : 3;
  t.mr = t.pk->rows(t.nv);
  t.w = width;
  t.pw = t.nv * width;
  return t;
}

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The tile for products whose columns are a head's `cols` features (P V, dS K, P^T dO, dS^T Q): as
// few vectors a row as cover them, so a head of 32 features on 64-wide panels does not multiply 32
// columns of zeros (the narrower tile also takes more rows: 12 for two vectors), and of the widths
// that pad the least (64 features on AVX2: panels of two vectors, not three with a ninth of zeros;
// SDPA L=128 forward+backward 1.5% faster, 1 thread, alternating in one process).
Tile narrow(const Tile& t, int64_t cols) {
  Tile n = t;
  const int64_t vecs = (cols + t.w - 1) / t.w;
  n.nv = int(std::clamp<int64_t>(vecs, 1, t.nv));
  for (int nv = n.nv - 1; nv >= 2; --nv)
    if (round_up(vecs, nv) < round_up(vecs, n.nv)) n.nv = nv;
  n.mr = t.pk->rows(n.nv);
  n.pw = n.nv * t.w;
  return n;
}

// Buffers on 64-byte boundaries (common.h): with rows whole panels long, every vector load of a panel
// or an accumulator is aligned.
using fvec = avector<float>;

// out (cols, rows; rows ldo apart) = a (rows, cols; lda)^T, in 16 x 16 tiles: each written row of
// 16 is one cache line, and the 16 rows read stay in L1 (a plain column-by-column transpose cost as
// much as the products).  Whole tiles go through the tile kernel's SIMD transpose where its build
// has one (t16), the rest element by element.
void transpose(const float* a, int64_t rows, int64_t cols, int64_t lda, float* out, int64_t ldo,
               void (*t16)(const float*, int64_t, float*, int64_t)) {
  constexpr int64_t kT = 16;
  for (int64_t i0 = 0; i0 < rows; i0 += kT) {
    const int64_t ni = std::min(kT, rows - i0);
    for (int64_t j0 = 0; j0 < cols; j0 += kT) {
      const int64_t nj = std::min(kT, cols - j0);
      if (t16 && ni == kT && nj == kT) {
        t16(a + i0 * lda + j0, lda, out + j0 * ldo + i0, ldo);
        continue;
      }
      for (int64_t j = j0; j < j0 + nj; ++j) {
        float* o = out + j * ldo + i0;
        const float* src = a + i0 * lda + j;
        for (int64_t i = 0; i < ni; ++i) o[i] = src[i * lda];
      }
    }
  }
}

// dst[p][c][r'] = scale * src[(p*PW + r') * ld + c]: the rows of src (R, C) as column panels of the
// transpose (C, R), zero-padded to whole panels.
void pack_t(const Tile& t, const float* src, int64_t R, int64_t C, int64_t ld, float* dst, float scale = 1.0f) {
  const int64_t PW = t.pw;
  for (int64_t p = 0; p < R; p += PW) {
    float* d = dst + p * C;
    const int64_t n = std::min(PW, R - p);
    transpose(src + p * ld, n, C, ld, d, PW, t.pk->transpose16);
    if (n < PW)
      for (int64_t c = 0; c < C; ++c) std::fill(d + c * PW + n, d + (c + 1) * PW, 0.0f);
  }
  if (scale != 1.0f) t.scale_row(dst, scale, dst, round_up(R, PW) * C);
}

// src (R, C) as column panels dst[p][r][c'] = src[r * ld + p*PW + c'], zero-padded; returns dst, or
// src itself when it already has that layout (one panel exactly as wide as its rows) on a 64-byte
// boundary (NumPy's arrays often start 16 bytes past one, and a tile's loads then split cache
// lines: 73-80% of the FMA peak instead of 82-84%, measured).
const float* pack_r(const float* src, int64_t R, int64_t C, int64_t ld, int64_t PW, float* dst) {
  if (C == PW && ld == PW && reinterpret_cast<uintptr_t>(src) % 64 == 0) return src;
  for (int64_t p = 0; p < C; p += PW) {
    float* d = dst + p * R;
    const int64_t n = std::min(PW, C - p);
    if (n == PW && PW % 8 == 0) {  // whole panels: fixed-size copies the compiler inlines (std::copy
      for (int64_t r = 0; r < R; ++r)  // calls memmove for each short row: 9% of L=128's forward)
        for (int64_t c = 0; c < PW; c += 8) std::memcpy(d + r * PW + c, src + r * ld + p + c, 8 * sizeof(float));
      continue;
    }
    for (int64_t r = 0; r < R; ++r) {
      std::copy(src + r * ld + p, src + r * ld + p + n, d + r * PW);
      std::fill(d + r * PW + n, d + (r + 1) * PW, 0.0f);
    }
  }
  return dst;
}

// C (m, ncols) += A (m, K; lda) @ panels (or = without `accumulate`), where `panels` holds column panels of PW, `pstride`
// floats apart, each starting at row `row0` of K rows; ncols a multiple of PW.  `at`: A is given as
// its transpose (K, m; lda), accumulating only (the backward's P^T dO and dS^T Q).
void product(const Tile& t, const float* A, int64_t lda, int64_t m, int64_t K, const float* panels, int64_t pstride,
             int64_t row0, float* C, int64_t ldc, int64_t ncols, bool accumulate = true, bool at = false) {
  if (K == 0 && !accumulate)
    for (int64_t r = 0; r < m; ++r) std::fill(C + r * ldc, C + r * ldc + ncols, 0.0f);
  // K in chunks of kKC rows, so a chunk of a panel (kKC x PW floats, 32 KB) stays in L1 while every
  // row tile of A passes over it (128 since the tile's k loop is unrolled: L=2048 forward 237 -> 233 ms,
  // forward+backward 849-854 -> 837-847 ms against 64, 1 thread; 256 and 512 no better)
  constexpr int64_t kKC = 128;
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    for (int64_t p = 0; p < ncols; p += t.pw) {
      const float* Bp = panels + (p / t.pw) * pstride + (row0 + k0) * t.pw;
      const auto tile = at ? t.pk->tile_at : accumulate || k0 > 0 ? t.pk->tile : t.pk->tile_set;
      for (int64_t r = 0; r < m; r += t.mr)
        tile(at ? A + k0 * lda + r : A + r * lda + k0, lda, Bp, kc, C + r * ldc + p, ldc, t.w,
             int(std::min<int64_t>(t.mr, m - r)), t.nv);
    }
  }
}

// sum a[c] b[c] in eight partial sums the compiler keeps in one vector (a single running sum is a
// chain of scalar adds: 2% of SDPA L=128 forward+backward)
float dot(const float* a, const float* b, int64_t n) {
  float part[8] = {};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int j = 0; j < 8; ++j) part[j] += a[c + j] * b[c + j];
  float d = 0;
  for (; c < n; ++c) d += a[c] * b[c];
  for (int j = 0; j < 8; ++j) d += part[j];
  return d;
}

// The tile whose panels hold the keys (the scores Q K^T and the backward's dP = dO V^T have a column a
// key): of the widths, the one that pads the keys least (128 keys on AVX2: 8 panels of two vectors,
// not 6 of three with 16 columns of zeros; SDPA L=128 1 thread, alternating in one process, forward
// minimum 19.4-20.3 -> 18.7-20.0 ms, forward+backward median 80.9 -> 77.7 ms).
Tile keys_tile(const Tile& t, int64_t S) { return narrow(t, S); }

int64_t key_block(const Tile& t, int64_t S) {
  return S <= kWholeRow ? round_up(std::max<int64_t>(S, 1), t.pw) : kBKMax / t.pw * t.pw;
}

// Brings the next head's inputs towards L2 a few cache lines at a time, spread over the work of the
// current head, so their misses overlap the products instead of stalling the packing of that head
// (a head of 128 keys waits on DRAM for every row it packs; the hardware prefetchers do not cover
// the 16 strided rows of a transpose).  SDPA L=128 forward, alternating in one process: minimum
// 18.4-19.3 -> 16.1-16.5 ms at 1 thread, 10.7-12.6 -> 9.8-11.2 ms at 2; forward+backward 1-3% faster;
// L=2048 unchanged.  Evenly spread measured faster than twice or four times as many lines a tick.
struct Prefetch {
  static constexpr int kRanges = 5;
  const char* p[kRanges] = {};
  const char* end[kRanges] = {};
  int cur = 0;
  int64_t lines = 0;  // cache lines a tick
  void add(const float* a, int64_t n) {
    for (int i = 0; i < kRanges; ++i)
      if (!p[i]) {
        p[i] = reinterpret_cast<const char*>(a);
        end[i] = p[i] + n * int64_t(sizeof(float));
        return;
      }
  }
  // spreads the ranges over `ticks` calls of tick()
  void pace(int64_t ticks) {
    int64_t bytes = 0;
    for (int i = 0; i < kRanges; ++i) bytes += end[i] - p[i];
    lines = ticks > 0 ? (bytes / 64 + ticks) / ticks : 0;
  }
  void tick() {
    for (int64_t n = 0; n < lines; ++n) {
      while (cur < kRanges && p[cur] >= end[cur]) ++cur;
      if (cur == kRanges) return;
      __builtin_prefetch(p[cur], 0, 2);
      p[cur] += 64;
    }
  }
};

// The forward of query rows [i0, i0 + nq) of head b against packed keys and values.
struct Fwd {
  const Tile& t;
  const Tile& tv;  // narrow(t, Ev): the values' panels and the output accumulators
  const float *q, *v;
  const AttnMask<float>& mask;
  float *out, *lse;
  int64_t L, S, E, Ev, Evp, BK;
  bool causal;
  float scale;
  double p;
  uint64_t seed;
  float lse_unit;  // ln 2 where the scores are in base 2 (Kt holds the keys times the scale and log2 e), else 1

  void block(int64_t b, int64_t i0, int64_t nq, const float* Kt, const float* Vr, fvec& sb, fvec& acc, float* m,
             float* l, Prefetch* pf = nullptr) const {
    const float ninf = -std::numeric_limits<float>::infinity();
    const float* Q = q + (b * L + i0) * E;
    std::fill(m, m + nq, ninf);
    std::fill(l, l + nq, 0.0f);
    const int64_t kend = causal ? std::min(S, i0 + nq) : S;
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
      const int64_t nk = std::min(BK, kend - j0), ld = round_up(nk, t.pw);
      product(t, Q, E, nq, E, Kt + j0 * E, E * t.pw, 0, sb.data(), ld, ld, false);
      for (int64_t r = 0; r < nq; ++r) {
        float* s = sb.data() + r * ld;
        const float* mr = attn_mask_row(mask, b, i0 + r, S);
        const float alpha = t.online_row(s, nk, attn_valid_keys(causal, i0 + r, j0, nk),
                                                         mr ? mr + j0 : nullptr, &m[r], &l[r]);
        if (p > 0) attn_drop_row(s, nk, b, i0 + r, j0, L, S, p, seed);
        if (alpha != 1.0f && j0 > 0) t.scale_row(acc.data() + r * Evp, alpha, acc.data() + r * Evp, Evp);
        if (pf) pf->tick();
      }
      // the first block sets the accumulators (nothing to rescale yet), later ones add to them
      product(tv, sb.data(), ld, nq, nk, Vr, S * tv.pw, j0, acc.data(), Evp, Evp, j0 > 0);
    }
    for (int64_t r = 0; r < nq; ++r) {
      float* o = out + (b * L + i0 + r) * Ev;
      const float* a = acc.data() + r * Evp;
      if (l[r] > 0.0f) {
        t.scale_row(a, 1.0f / l[r], o, Ev);
        lse[b * L + i0 + r] = m[r] * lse_unit + std::log(l[r]);
      } else {
        std::fill(o, o + Ev, l[r] == l[r] ? 0.0f : l[r]);
        lse[b * L + i0 + r] = l[r] == l[r] ? ninf : l[r];
      }
    }
  }
};
}  // namespace

bool attention_packed_available() { return conv_direct_width() == 16 || conv_direct_width() == 8; }

void attention_forward_packed(const float* q, const float* k, const float* v, AttnMask<float> mask, float* out,
                              float* lse, int64_t B, int64_t L, int64_t S, int64_t E, int64_t Ev, bool causal,
                              float scale, double dropout_p, uint64_t seed) {
  const bool b2 = base2_rows(mask);
  const Tile base = tile_of(conv_direct_width(), b2);
  const Tile t = keys_tile(base, S);
  const Tile tv = narrow(base, Ev);
  const int64_t Sp = round_up(std::max<int64_t>(S, 1), t.pw), Evp = round_up(Ev, tv.pw), BK = key_block(t, S);
  const int64_t nqb = (L + kBQ - 1) / kBQ;
  const Fwd f{t, tv, q, v, mask, out, lse, L, S, E, Ev, Evp, BK, causal, scale, dropout_p, seed, b2 ? kLn2 : 1.0f};
  auto pack_head = [&](int64_t b, float* Kt, float* Vr) {  // returns the values' panels
    pack_t(t, k + b * S * E, S, E, E, Kt, b2 ? scale * kLog2e : scale);
    return pack_r(v + b * S * Ev, S, Ev, Ev, tv.pw, Vr);
  };
  const int64_t nthr = max_threads();
  if (B >= 2 * nthr || nqb == 1) {  // a head per task: its keys and values packed once, in cache
    parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
      fvec Kt(Sp * E), Vr(S * Evp), sb(kBQ * BK), acc(kBQ * Evp), m(kBQ), l(kBQ);
      for (int64_t b = b0; b < b1; ++b) {
        const float* vr = pack_head(b, Kt.data(), Vr.data());
        Prefetch pf;
        if (b + 1 < b1) {
          pf.add(k + (b + 1) * S * E, S * E);
          pf.add(v + (b + 1) * S * Ev, S * Ev);
          pf.add(q + (b + 1) * L * E, L * E);
          int64_t ticks = 0;
          for (int64_t i0 = 0; i0 < L; i0 += kBQ)
            ticks += std::min(kBQ, L - i0) * (((causal ? std::min(S, i0 + kBQ) : S) + BK - 1) / BK);
          pf.pace(ticks);
        }
        for (int64_t i0 = 0; i0 < L; i0 += kBQ)
          f.block(b, i0, std::min(kBQ, L - i0), Kt.data(), vr, sb, acc, m.data(), l.data(), &pf);
      }
    });
    return;
  }
  // few heads: pack them all first, then spread the query blocks over the threads
  fvec Kt(B * Sp * E), Vr(B * S * Evp);
  std::vector<const float*> vr(B);
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) vr[b] = pack_head(b, Kt.data() + b * Sp * E, Vr.data() + b * S * Evp);
  });
  parallel_for(B * nqb, 1, [&](int64_t t0, int64_t t1) {
    fvec sb(kBQ * BK), acc(kBQ * Evp), m(kBQ), l(kBQ);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / nqb, i0 = (task % nqb) * kBQ;
      f.block(b, i0, std::min(kBQ, L - i0), Kt.data() + b * Sp * E, vr[b], sb, acc, m.data(), l.data());
    }
  });
}

void attention_backward_packed(const float* gout, const float* q, const float* k, const float* v, const float* out,
                               const float* lse, AttnMask<float> mask, float* gq, float* gk, float* gv, int64_t B,
                               int64_t L, int64_t S, int64_t E, int64_t Ev, bool causal, float scale,
                               double dropout_p, uint64_t seed) {
  const bool b2 = base2_rows(mask);
  const Tile base = tile_of(conv_direct_width(), b2);
  const Tile t = keys_tile(base, S);
  const Tile te = narrow(base, E), tv = narrow(base, Ev);  // for the products with E and Ev columns
  const int64_t PW = t.pw, Sp = round_up(std::max<int64_t>(S, 1), PW), Ep = round_up(E, te.pw), Evp = round_up(Ev, tv.pw);
  const int64_t BK = key_block(t, S);
  // A head per task: its dK, dV and dQ are this task's alone.
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    fvec Kt(Sp * E), Vt(Sp * Ev), Kr(S * Ep), Qr(L * Ep), Or(L * Evp), D(L);
    fvec dq(L * Ep), dk(S * Ep), dv(S * Evp), sb(kBQ * BK), dp(kBQ * BK);
    for (int64_t b = b0; b < b1; ++b) {
      Prefetch pf;
      if (b + 1 < b1) {
        pf.add(k + (b + 1) * S * E, S * E);
        pf.add(v + (b + 1) * S * Ev, S * Ev);
        pf.add(q + (b + 1) * L * E, L * E);
        pf.add(gout + (b + 1) * L * Ev, L * Ev);
        pf.add(out + (b + 1) * L * Ev, L * Ev);
        int64_t ticks = 0;
        for (int64_t j0 = 0; j0 < S; j0 += BK)
          for (int64_t i0 = causal ? (j0 / kBQ) * kBQ : 0; i0 < L; i0 += kBQ) ticks += std::min(kBQ, L - i0);
        pf.pace(ticks);
      }
      const float *Qb = q + b * L * E, *Kb = k + b * S * E, *Vb = v + b * S * Ev, *Gb = gout + b * L * Ev;
      pack_t(t, Kb, S, E, E, Kt.data(), b2 ? scale * kLog2e : scale);  // the forward's scores
      pack_t(t, Vb, S, Ev, Ev, Vt.data());
      const float* kr = pack_r(Kb, S, E, E, te.pw, Kr.data());
      const float* qr = pack_r(Qb, L, E, E, te.pw, Qr.data());
      const float* gr = pack_r(Gb, L, Ev, Ev, tv.pw, Or.data());
      for (int64_t i = 0; i < L; ++i) D[i] = dot(Gb + i * Ev, out + (b * L + i) * Ev, Ev);
      std::fill(dq.begin(), dq.end(), 0.0f);
      std::fill(dk.begin(), dk.end(), 0.0f);
      std::fill(dv.begin(), dv.end(), 0.0f);
      for (int64_t j0 = 0; j0 < S; j0 += BK) {
        const int64_t nkb = std::min(BK, S - j0);
        for (int64_t i0 = causal ? (j0 / kBQ) * kBQ : 0; i0 < L; i0 += kBQ) {
          const int64_t nq = std::min(kBQ, L - i0);
          const int64_t nk = causal ? std::min(nkb, i0 + nq - j0) : nkb;
          const int64_t ld = round_up(nk, PW);
          product(t, Qb + i0 * E, E, nq, E, Kt.data() + j0 * E, E * PW, 0, sb.data(), ld, ld, false);
          product(t, Gb + i0 * Ev, Ev, nq, Ev, Vt.data() + j0 * Ev, Ev * PW, 0, dp.data(), ld, ld, false);
          for (int64_t r = 0; r < nq; ++r) {
            float *s = sb.data() + r * ld, *d = dp.data() + r * ld;
            const float* mr = attn_mask_row(mask, b, i0 + r, S);
            t.prob_row(s, nk, attn_valid_keys(causal, i0 + r, j0, nk), mr ? mr + j0 : nullptr,
                                       lse[b * L + i0 + r]);
            if (dropout_p > 0) attn_drop_row(d, nk, b, i0 + r, j0, L, S, dropout_p, seed);
            t.ds_row(s, d, nk, D[i0 + r], scale);
            if (dropout_p > 0) attn_drop_row(s, nk, b, i0 + r, j0, L, S, dropout_p, seed);
            pf.tick();
          }
          // dQ_i += dS K_j
          product(te, dp.data(), ld, nq, nk, kr, S * te.pw, j0, dq.data() + i0 * Ep, Ep, Ep);
          // dV_j += P^T dO_i and dK_j += dS^T Q_i, reading P and dS transposed in place
          product(tv, sb.data(), ld, nk, nq, gr, L * tv.pw, i0, dv.data() + j0 * Evp, Evp, Evp, true, true);
          product(te, dp.data(), ld, nk, nq, qr, L * te.pw, i0, dk.data() + j0 * Ep, Ep, Ep, true, true);
        }
      }
      for (int64_t i = 0; i < L; ++i) std::copy(dq.data() + i * Ep, dq.data() + i * Ep + E, gq + (b * L + i) * E);
      for (int64_t j = 0; j < S; ++j) {
        std::copy(dk.data() + j * Ep, dk.data() + j * Ep + E, gk + (b * S + j) * E);
        std::copy(dv.data() + j * Evp, dv.data() + j * Evp + Ev, gv + (b * S + j) * Ev);
      }
    }
  });
}

}  // namespace fastdl
