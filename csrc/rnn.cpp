#include "rnn.h"

#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.h"
#include "conv_direct.h"
#include "gemm.h"
#include "gemm_packed.h"
#include "simd.h"

namespace fastdl {

namespace {

inline int64_t time_at(const RnnDims& d, int64_t s) { return d.reverse ? d.T - 1 - s : s; }
inline bool valid(const RnnDims& d, int64_t t, int64_t b) { return !d.lengths || t < d.lengths[b]; }

constexpr int64_t kGrain = 4096;  // gate elements per thread

// A few SIMD widths of floats: an inlined loop, not a call of memcpy per 64 bytes
inline void copy_floats(float* __restrict__ dst, const float* __restrict__ src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// This thread's buffer `slot` of at least n elements, kept between calls: a fresh (T, B, G*H) array
// per call cost a page fault and a kernel zeroing per 4 KB (8% of an LSTM backward, measured).
// Slots: 0, 1 backward's dxw / dhw; 2 forward's xw; then the packed forward's own, backward's h_{t-1}
// (after x in each row when the weight gradients are one product), that product's (G H, I + H) and
// its left operand in micro-panels.
enum : int {
  kSlotWp = 3, kSlotWpi, kSlotH, kSlotC, kSlotHidden, kSlotActs, kSlotTemps, kSlotHprev, kSlotXt, kSlotStage, kSlotDw,
  kSlotDxp, kSlots
};
// On 64-byte boundaries (avector): the tile kernel loads whole vectors of x^T and h^T.
template <class T> T* keep(int slot, size_t n) {
  thread_local avector<T> bufs[kSlots];
  if (bufs[slot].size() < n) {
    bufs[slot].clear();
    bufs[slot].shrink_to_fit();
    bufs[slot].resize(n);
  }
  return bufs[slot].data();
}

}  // namespace

// The packed float32 forward (see rnn.h).  W_hh is packed per block of U hidden units (U = the SIMD
// width): the block's panel holds, for every k, the U weights of each gate in turn, so one tile of
// the product gives rows' complete pre-activations (i, f, g, o) for those units.  A step is one
// parallel region over unit blocks; each block runs its tiles of rows, then their gates.
bool rnn_forward_packed(const RnnDims& d, const float* x, const float* w_ih, const float* bias, const float* xw,
                        const float* h0, const float* c0, const float* w_hh, const float* b_hh, float* out, float* hn,
                        float* cn, float* gates, float* cs, float* hnl) {
  const int U = conv_direct_width();
  if (!U || d.H % U) return false;
  const PackedKernels& kern = packed_kernels(U);
  const int64_t G = rnn_gates(d.mode), GH = G * d.H, B = d.B, H = d.H, I = d.I, GU = G * U, blocks = H / U;
  const bool gru = d.mode == RnnMode::GRU, lstm = d.mode == RnnMode::LSTM;
  const bool fused = xw == nullptr;  // the input path too, step by step, from W_ih packed the same way
  const int MR = kern.rows(int(G));
  // every buffer is this thread's, kept between calls (fresh pages per call cost page faults and
  // the kernel's zeroing: 10% of an LSTM forward at T=50, measured)
  auto pack = [&](const float* w, int64_t K, int slot) {
    float* wp = keep<float>(slot, GH * K);
    parallel_for(blocks, 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u)
        for (int64_t g = 0; g < G; ++g)
          kern.transpose_rows(w + (g * H + u * U) * K, K, U, K, wp + u * K * GU + g * U, GU);
    });
    return wp;
  };
  const float* const wp = pack(w_hh, H, kSlotWp);
  const float* const wpi = fused ? pack(w_ih, I, kSlotWpi) : nullptr;
  // Without lengths every row's state is its last output, read from out (no copy of h per step);
  // with them a finished row keeps its state, so h goes through two buffers in turn.
  const bool direct = d.lengths == nullptr;
  float* const hbuf = keep<float>(kSlotH, direct ? 0 : 2 * B * H);
  float* const c = lstm ? keep<float>(kSlotC, B * H) : nullptr;  // blocked: (blocks, B, U), each block's cells contiguous
  if (!direct) std::memcpy(hbuf, h0, sizeof(float) * B * H);
  if (lstm)
    for (int64_t u = 0; u < blocks; ++u)
      for (int64_t b = 0; b < B; ++b) std::memcpy(c + (u * B + b) * U, c0 + b * H + u * U, sizeof(float) * U);
  // Rows of the batch never meet, so splitting them over the threads would need no barrier per step;
  // but then every thread streams all of W per step (measured: 2 threads, LSTM T=50 B=32 H=256
  // 9.1-9.4 ms by rows against 8.3-8.9 by unit blocks; H=512 B=64, 132-143 ms against 111-118).
  const int64_t parts = std::min<int64_t>(max_threads(), blocks);
  const int64_t KC = std::max<int64_t>(16, (int64_t(32) << 10) / (GU * int64_t(sizeof(float))));
  float* const hidden = keep<float>(kSlotHidden, parts * B * GU);
  float* const acts = keep<float>(kSlotActs, parts * B * GU);
  float* const temps = keep<float>(kSlotTemps, 2 * parts * B * U);
  auto h_before = [&](int64_t s) {  // the state step s reads
    return direct ? (s == 0 ? h0 : out + time_at(d, s - 1) * B * H) : hbuf + (s & 1) * B * H;
  };
  // Step s, unit block u, rows [rb, re): scratch (G, rows, U) at hall and act, (rows, U) at tmp and kept.
  auto step_block = [&](int64_t s, int64_t u, int64_t rb, int64_t re, float* hall, float* act, float* tmp,
                        float* kept) {
    const int64_t t = time_at(d, s), nb = re - rb, RU = nb * U, j0 = u * U;
    const float* hp = h_before(s);
    float* hq = direct ? nullptr : hbuf + ((s + 1) & 1) * B * H;
    const float* pre = fused ? nullptr : xw + t * B * GH;
    const int64_t ntile = (nb + MR - 1) / MR;  // tiles of rows, as even as they come (rows / ntile <= MR)
    // the tile starts from the bias: both (fused input path) or b_hh (the GRU's hidden path)
    const float* b0 = fused ? bias : gru ? b_hh : nullptr;
    for (int64_t r = 0; r < nb; ++r)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t k = 0; k < U; ++k) hall[g * RU + r * U + k] = b0 ? b0[g * H + j0 + k] : 0.0f;
    // the panel in chunks of KC rows that stay in L1 while every row tile uses them
    if (fused)
      for (int64_t k0 = 0; k0 < I; k0 += KC)
        for (int64_t i = 0; i < ntile; ++i) {
          const int64_t r0 = i * nb / ntile, r1 = (i + 1) * nb / ntile;
          kern.tile(x + (t * B + rb + r0) * I + k0, I, wpi + (u * I + k0) * GU, std::min(KC, I - k0), hall + r0 * U, U,
                    RU, int(r1 - r0), int(G));
        }
    for (int64_t k0 = 0; k0 < H; k0 += KC)
      for (int64_t i = 0; i < ntile; ++i) {
        const int64_t r0 = i * nb / ntile, r1 = (i + 1) * nb / ntile;
        kern.tile(hp + (rb + r0) * H + k0, H, wp + (u * H + k0) * GU, std::min(KC, H - k0), hall + r0 * U, U, RU,
                  int(r1 - r0), int(G));
      }
    // the block's gates for every row at once: a few long activation calls per block
    // pre-activations: input path (xw, gate g of row b at pre[b * GH + g * H + j0]) + hidden path
    // (GRU: only r and z here; n takes r times its hidden part); the fused path's tile holds the
    // whole pre-activation already: it is activated in place
    const float* th = hall;
    float* ga = fused ? hall : act;  // gate g of row r at ga[g * RU + r * U]
    const int64_t summed = fused ? 0 : gru ? 2 : G;
    for (int64_t g = 0; g < summed; ++g)
      for (int64_t r = 0; r < nb; ++r) {
        const float* hh = th + g * RU + r * U;
        const float* xp = pre + (rb + r) * GH + g * H + j0;
        float* a = act + g * RU + r * U;
        for (int64_t k = 0; k < U; ++k) a[k] = xp[k] + hh[k];
      }
    if (lstm) {  // the block's cells, (rows, U) contiguous, and h into tmp, by one fused call
      float* cblock = c + (u * B + rb) * U;
      if (!direct) std::memcpy(kept, cblock, sizeof(float) * RU);
      kern.lstm_cell(ga, cblock, tmp, RU);
      if (!direct)  // a finished sequence keeps its cell
        for (int64_t r = 0; r < nb; ++r)
          if (!valid(d, t, rb + r)) std::memcpy(cblock + r * U, kept + r * U, sizeof(float) * U);
    } else if (gru) {
      SIMD(sigmoid_f<float>)(ga, ga, 2 * RU);  // r, z
      for (int64_t r = 0; r < nb; ++r) {
        const float* xp = pre + (rb + r) * GH + 2 * H + j0;
        const float *hn_ = th + 2 * RU + r * U, *rr = ga + r * U;
        for (int64_t k = 0; k < U; ++k) tmp[r * U + k] = xp[k] + rr[k] * hn_[k];
      }
      SIMD(tanh_f<float>)(tmp, ga + 2 * RU, RU);  // n
      for (int64_t r = 0; r < nb; ++r) {
        const float *z = ga + RU + r * U, *n = ga + 2 * RU + r * U, *hprev = hp + (rb + r) * H + j0;
        for (int64_t k = 0; k < U; ++k) tmp[r * U + k] = (1.0f - z[k]) * n[k] + z[k] * hprev[k];
      }
    } else {
      if (d.mode == RnnMode::Tanh)
        SIMD(tanh_f<float>)(ga, ga, RU);
      else
        SIMD(relu_f<float>)(ga, ga, RU);
      std::memcpy(tmp, ga, sizeof(float) * RU);
    }
    // the rows' new state, outputs and what backward needs; a finished sequence keeps its state
    for (int64_t r = 0; r < nb; ++r) {
      const int64_t b = rb + r, row = (t * B + b) * H + j0;
      if (!valid(d, t, b)) {
        std::fill_n(out + row, U, 0.0f);
        std::memcpy(hq + b * H + j0, hp + b * H + j0, sizeof(float) * U);
        if (gates)
          for (int64_t g = 0; g < G; ++g) std::fill_n(gates + (t * B + b) * GH + g * H + j0, U, 0.0f);
        if (cs) std::memcpy(cs + row, c + (u * B + b) * U, sizeof(float) * U);
        if (hnl) std::fill_n(hnl + row, U, 0.0f);
        continue;
      }
      copy_floats(out + row, tmp + r * U, U);
      if (hq) copy_floats(hq + b * H + j0, tmp + r * U, U);
      if (gates)
        for (int64_t g = 0; g < G; ++g) copy_floats(gates + (t * B + b) * GH + g * H + j0, ga + g * RU + r * U, U);
      if (cs) copy_floats(cs + row, c + (u * B + b) * U, U);
      if (hnl) copy_floats(hnl + row, th + 2 * RU + r * U, U);
    }
  };
  for (int64_t s = 0; s < d.T; ++s)  // a step: one parallel region over unit blocks
    parallel_parts(parts, [&](int64_t part, int64_t np) {
      const int64_t ub = part * blocks / np, ue = (part + 1) * blocks / np;
      float *hall = hidden + part * B * GU, *act = acts + part * B * GU, *tmp = temps + part * B * U,
            *kept = temps + (parts + part) * B * U;
      for (int64_t u = ub; u < ue; ++u) step_block(s, u, 0, B, hall, act, tmp, kept);
    });
  std::memcpy(hn, h_before(d.T), sizeof(float) * B * H);
  if (lstm)
    for (int64_t u = 0; u < blocks; ++u)
      for (int64_t b = 0; b < B; ++b) std::memcpy(cn + b * H + u * U, c + (u * B + b) * U, sizeof(float) * U);
  return true;
}

// The recurrent forward with the batch along the vectors (every mode): per step, gates^T (G H, B) =
// W_ih x_t^T + W_hh h^T + bias, with x^T and h^T (K, B) the tile kernel's packed operand and W's rows
// its broadcast rows (W packed once per call, each tile's rows transposed: below).  h^T of a step
// (H x B: 32 KB at H=256, B=32) stays close (L1, L2) while W, the large operand, streams through once,
// one broadcast per weight and two or four FMAs each (the row-major path streams W's packed panels
// instead, refetching them for each tile of rows).  The GRU's hidden path for its n gate (W_hn h +
// b_hn, which r multiplies) goes to a block of its own instead of onto the gates.  The batch is padded
// to whole vectors (columns never meet, the padding stays zero-fed), in groups of at most four vectors
// (AVX-512) or two (AVX2), W streaming through once per group.  B at least one vector and padded by at
// most a quarter.  bias: the pre-activations' (G H), b_hn: the GRU's hidden n bias (H) or null.
bool rnn_forward_t(const RnnDims& d, const float* x, const float* w_ih, const float* w_hh, const float* bias,
                   const float* b_hn, const float* h0, const float* c0, float* out, float* hn, float* cn, float* gates,
                   float* cs, float* hnl) {
  const int U = conv_direct_width();
  const bool lstm = d.mode == RnnMode::LSTM, gru = d.mode == RnnMode::GRU;
  if (!U || d.H % U) return false;
  const PackedKernels& kern = packed_kernels(U);
  const int64_t G = rnn_gates(d.mode), B = d.B, H = d.H, I = d.I, GH = G * H, nvec = (B + U - 1) / U, Bp = nvec * U;
  if (B < U || Bp * 4 > B * 5) return false;
  // column groups of at most gv vectors, as even as they come: four with AVX-512's 32 registers (a tile
  // of 6 rows x 4 vectors), two with AVX2's 16 (6 x 2: 4 would leave room for only 2 rows)
  // (and, where that makes fewer groups than threads, one group per thread if each keeps at least
  // two vectors: each thread then takes its group through every step with no barrier between steps,
  // W streaming through both (B=64 on AVX-512, four vectors: LSTM T=100 forward 99.0 -> 98.8 ms, GRU
  // 74.6 -> 73.7 ms, in-process A/B).  Groups of one vector are not worth it: a tile then makes one
  // broadcast per FMA and reads the whole of W for half as many columns, where one group of all the
  // vectors, its units split between the threads at every step, keeps each thread's half of W in its
  // L2 (1.6 MB whole at I=128 H=256).  LSTM T=50 B=32 I=128 H=256 forward at 1 thread as two groups of
  // one vector took 5.81-5.92 ms against 5.23-5.30 as one (medians); at 2 threads, medians of alternating
  // processes (AVX-512), by units against a group each: forward 2.74-2.90 against 2.99-3.22 ms,
  // forward+backward 9.20-9.79 against 9.73-10.09, GRU forward 2.31-2.39 against 2.41-2.51 (backward
  // level), B=48 (three vectors: one group against 2 + 1) forward 4.68-4.81 against 5.86-6.00 ms,
  // forward+backward 16.4-17.5 against 18.5-18.6; AVX2 at B=16 forward 2.99-3.07 against 3.30-3.39 ms,
  // forward+backward 9.82-9.97 against 10.20-10.36; two such processes at once (B=32 forward) 5.50-5.76
  // ms each against 6.11-6.20.)
  const int64_t gv = U == 16 ? 4 : 2, nthr = max_threads();
  int64_t ng = (nvec + gv - 1) / gv;
  if (ng < nthr && nvec >= 2 * nthr) ng = nthr;
  auto col0 = [&](int64_t q) { return q * nvec / ng * U; };  // group q: columns [col0(q), col0(q + 1))
  // x^T per step and group, (I + 1, width) each, zero past the batch, its last row ones (the bias's row:
  // below); h^T (two, in turn) and c^T the same over H
  const int64_t KI = I + 1;
  float* const xt = keep<float>(kSlotXt, d.T * KI * Bp);
  float* const hbuf = keep<float>(kSlotH, 2 * H * Bp);
  float* const ct = lstm ? keep<float>(kSlotC, H * Bp) : nullptr;
  float* const gt = keep<float>(kSlotHidden, GH * Bp);  // the step's gates^T, group after group
  float* const nt = gru ? keep<float>(kSlotActs, H * Bp) : nullptr;  // the GRU's W_hn h + b_hn, the same
  parallel_for(d.T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t q = 0; q < ng; ++q) {
        const int64_t c0q = col0(q), w = col0(q + 1) - c0q;
        float* dst = xt + t * KI * Bp + KI * c0q;
        std::fill_n(dst + I * w, w, 1.0f);
        // whole 16 x 16 blocks of the batch's columns by the SIMD transpose, the rest (and the padding) one by one
        const int64_t kf = std::min(w, B - c0q) / 16 * 16, i16 = I / 16 * 16;
        for (int64_t k = 0; k < kf; k += 16)
          for (int64_t i = 0; i < i16; i += 16) kern.transpose16(x + (t * B + c0q + k) * I + i, I, dst + i * w + k, w);
        for (int64_t i = 0; i < I; ++i)
          for (int64_t k = i < i16 ? kf : 0; k < w; ++k) dst[i * w + k] = c0q + k < B ? x[(t * B + c0q + k) * I + i] : 0.0f;
      }
  });
  for (int64_t q = 0; q < ng; ++q) {  // h0^T, c0^T
    const int64_t c0q = col0(q), w = col0(q + 1) - c0q;
    for (int64_t j = 0; j < H; ++j)
      for (int64_t k = 0; k < w; ++k) {
        hbuf[H * c0q + j * w + k] = c0q + k < B ? h0[(c0q + k) * H + j] : 0.0f;
        if (lstm) ct[H * c0q + j * w + k] = c0q + k < B ? c0[(c0q + k) * H + j] : 0.0f;
      }
  }
  const int64_t parts = std::min<int64_t>(max_threads(), H / U), gparts = std::min<int64_t>(max_threads(), ng);
  const bool by_groups = gparts > 1 && max_threads() <= ng;
  const int64_t uparts = by_groups ? 1 : parts;  // the blocks of units the tiles are laid out in
  float* const kept = keep<float>(kSlotTemps, d.lengths && lstm ? H * Bp : 0);  // c^T before the step (lengths)
  // A part's units [j0, j1) of every gate, in tiles of at most MR rows (the fewest any group's width
  // takes: 12 for two vectors of 16 but 8 for one) as even as they come: tile i of n is units
  // [j0 + i nj / n, j0 + (i + 1) nj / n).
  int MR = kern.rows(int(col0(1) / U));
  for (int64_t q = 1; q < ng; ++q) MR = std::min(MR, kern.rows(int((col0(q + 1) - col0(q)) / U)));
  auto ntiles = [&](int64_t nj) { return (nj + MR - 1) / MR; };
  // W_ih and W_hh packed once per call, tile by tile: the block of rows [r, r + mr) of W (K wide) as
  // its transpose (K, mr) at the same place, r K.  Each step then reads one contiguous panel per tile,
  // the mr broadcasts of a k adjacent, instead of mr rows K apart: LSTM forward at T=100 B=64 I=256
  // H=512 (W 6 MB, from L3 every step), 1 thread, alternating in one process: median 390 -> 300 ms,
  // minimum 295 -> 268; at T=50 B=32 H=256 medians 22.3 -> 20.4 ms (1 thread), 13.3 -> 12.3 (2).  Each
  // block transposed in registers (transpose_rows) rather than one element at a time: the packing is
  // the whole cost of a short call (LSTM T=1 B=16 I=128 H=256, 1 thread, medians of alternating
  // processes 256-363 -> 193-276 us; B=1, the row-major path's packing, 335 -> 110 us, and I=256
  // H=512 2.1 -> 0.4 ms) and 2% of T=50 B=32 (13.3 -> 13.0 ms).
  // W_ih's panels end with the bias as one more k (against x^T's row of ones), so that the input path's
  // product sets the gates instead of adding to a copy of the bias made at every step (1 thread,
  // alternating processes, medians: LSTM T=50 B=32 forward 12.9-13.1 -> 12.7-12.8 ms, GRU 9.8-9.9 ->
  // 9.5-9.8, LSTM T=100 B=64 188-193 -> 186-187).
  float* const wpi = keep<float>(kSlotWpi, GH * KI);
  float* const wph = keep<float>(kSlotWp, GH * H);
  // The LSTM's step as fused tiles (lstm_step_tile, the AVX-512 build's): NU units' four gates a tile,
  // the input and hidden paths into the same accumulators and the cell applied there, so that the
  // pre-activations never go through memory (nor are the accumulators stored and loaded again between
  // the two products).  Its panels hold, per tile of units [u0, u0 + nu), (K, 4 nu) at 4 u0 K, column
  // q nu + u being gate q's row of unit u0 + u; tiles of a part's units as even as they come.  Against
  // the separate products and cell, medians of alternating processes (AVX-512, LSTM T=50 B=32 I=128
  // H=256): forward 6.51-6.71 -> 6.27-6.40 ms at 1 thread, minimums 3.82-3.88 -> 3.56-3.65 at 2;
  // forward+backward 21.6-22.5 -> 21.0-21.6 ms; T=100 B=64 256->512 forward 91.3-93.7 -> 88.9-91.5 ms.
  const bool fused = lstm && kern.lstm_step_tile;
  int NU = fused ? kern.lstm_step_units(int(col0(1) / U)) : 0;
  for (int64_t q = 1; fused && q < ng; ++q) NU = std::min(NU, kern.lstm_step_units(int((col0(q + 1) - col0(q)) / U)));
  auto utiles = [&](int64_t nj) { return (nj + NU - 1) / NU; };
  if (fused) {  // every tile's two panels, the tiles spread over the threads
    std::vector<std::pair<int64_t, int64_t>> tiles;  // (u0, nu)
    for (int64_t part = 0; part < uparts; ++part) {
      const int64_t j0 = part * H / uparts, nj = (part + 1) * H / uparts - j0, nt = utiles(nj);
      for (int64_t i = 0; i < nt; ++i) tiles.emplace_back(j0 + i * nj / nt, (i + 1) * nj / nt - i * nj / nt);
    }
    parallel_for(int64_t(tiles.size()), 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t u0 = tiles[i].first, nu = tiles[i].second;  // nu <= 3: 12 rows
        const float* rows_ih[12];
        const float* rows_hh[12];
        for (int64_t q = 0; q < 4; ++q)
          for (int64_t u = 0; u < nu; ++u) {
            rows_ih[q * nu + u] = w_ih + (q * H + u0 + u) * I;
            rows_hh[q * nu + u] = w_hh + (q * H + u0 + u) * H;
          }
        float* pi = wpi + 4 * u0 * KI;
        kern.transpose_row_ptrs(rows_ih, int(4 * nu), I, pi, 4 * nu);
        for (int64_t q = 0; q < 4; ++q)
          for (int64_t u = 0; u < nu; ++u) pi[I * 4 * nu + q * nu + u] = bias[q * H + u0 + u];
        kern.transpose_row_ptrs(rows_hh, int(4 * nu), H, wph + 4 * u0 * H, 4 * nu);
      }
    });
  } else {
    parallel_parts(uparts * G, [&](int64_t pg, int64_t) {
      const int64_t part = pg / G, gate = pg % G;
      const int64_t j0 = part * H / uparts, j1 = (part + 1) * H / uparts, nj = j1 - j0, ntile = ntiles(nj);
      for (int64_t i = 0; i < ntile; ++i) {
        const int64_t row = gate * H + j0 + i * nj / ntile, mr = (i + 1) * nj / ntile - i * nj / ntile;
        kern.transpose_rows(w_ih + row * I, I, int(mr), I, wpi + row * KI, mr);
        for (int64_t r = 0; r < mr; ++r) wpi[row * KI + I * mr + r] = bias[row + r];
        kern.transpose_rows(w_hh + row * H, H, int(mr), H, wph + row * H, mr);
      }
    });
  }
  // Step s of group q for units [j0, j1): its gates, cells and outputs.  Groups never meet (the batch's
  // columns are independent) and each has its own blocks of every buffer, so with at least as many
  // groups as threads each thread takes whole groups through every step with no barrier between
  // steps; otherwise each step is one parallel region over blocks of units.  By groups against by
  // units, 2 threads, alternating in one process (AVX2: LSTM T=50 B=32 H=256 has two groups): forward
  // median 13.2 -> 11.9 ms, 10th percentile 11.2 -> 10.8; forward+backward 46.6 -> 42.2, 39.2 -> 38.3
  // (one thread held up no longer holds up the other at every step); minimum 10.4 -> 10.2 ms, and at
  // T=100 B=64 H=512 (four groups, W 6 MB streamed by both threads) 149 -> 144 ms, median level.  (The
  // row-major path above measured the opposite split, by rows, slower on a quieter machine.)
  auto run = [&](int64_t s, int64_t q, int64_t j0, int64_t j1) {
    const int64_t t = time_at(d, s), nj = j1 - j0;
    const float* hcur = hbuf + (s & 1) * H * Bp;
    float* hnext = hbuf + ((s + 1) & 1) * H * Bp;
    const int64_t c0q = col0(q), w = col0(q + 1) - c0q;
    const int nv = int(w / U);
    float* g = gt + GH * c0q;  // (G H, w): gate row r at g + r * w
    float* nb = gru ? nt + H * c0q : nullptr;  // (H, w)
    float* cq = lstm ? ct + H * c0q + j0 * w : nullptr;
    float* hq = hnext + H * c0q + j0 * w;
    const float* hp = hcur + H * c0q + j0 * w;
    float* nq = gru ? nb + j0 * w : nullptr;
    if (lstm && d.lengths) std::memcpy(kept + H * c0q + j0 * w, cq, sizeof(float) * nj * w);
    if (fused) {  // the LSTM's gates, cells and states by its fused tiles (the gates kept in g to be saved)
      const int64_t nt = utiles(nj);
      for (int64_t i = 0; i < nt; ++i) {
        const int64_t u0 = j0 + i * nj / nt, nu = j0 + (i + 1) * nj / nt - u0;
        kern.lstm_step_tile(wpi + 4 * u0 * KI, KI, xt + t * KI * Bp + KI * c0q, wph + 4 * u0 * H, H, hcur + H * c0q,
                            w, ct + H * c0q + u0 * w, hnext + H * c0q + u0 * w, gates ? g + u0 * w : nullptr, H * w,
                            int(nu), nv);
      }
    } else {
      if (gru)
        for (int64_t j = j0; j < j1; ++j) std::fill_n(nb + j * w, w, b_hn ? b_hn[j] : 0.0f);
      // g += W's rows @ opnd (K, w), W from its packed panels (wp), each tile over the whole of K: its
      // accumulators stay in registers (chunks of K that keep opnd in L1 reload them from L2 per chunk
      // instead: measured slower, LSTM T=100 B=64 H=512 forward 208-217 ms in 24 KB chunks against
      // 173-175 ms unchunked, 1 thread; with the packed panels too, T=50 B=32 H=256 minimum 17.6 ->
      // 19.8, 18.5 and 18.1 ms in chunks of 64, 128 and 192 k); the GRU's hidden n rows into nb
      // (the input path's sets g, the hidden path's adds)
      const int64_t ntile = ntiles(nj);
      auto product = [&](const float* wp, int64_t K, const float* opnd, bool hidden) {
        for (int64_t gate = 0; gate < G; ++gate)
          for (int64_t i = 0; i < ntile; ++i) {
            const int64_t r0 = j0 + i * nj / ntile, r1 = j0 + (i + 1) * nj / ntile, row = gate * H + r0;
            float* c = hidden && gru && gate == 2 ? nb + r0 * w : g + row * w;
            (hidden ? kern.tile_at : kern.tile_at_set)(wp + row * K, r1 - r0, opnd, K, c, w, U, int(r1 - r0), nv);
          }
      };
      product(wpi, KI, xt + t * KI * Bp + KI * c0q, false);
      product(wph, H, hcur + H * c0q, true);
      if (lstm) {
        kern.lstm_cell_strided(g + j0 * w, H * w, cq, hq, nj * w);
      } else if (gru) {
        kern.gru_cell_strided(g + j0 * w, H * w, nq, hp, hq, nj * w);
      } else {  // the simple RNN: its "gate" is the new state
        if (d.mode == RnnMode::Tanh)
          SIMD(tanh_f<float>)(g + j0 * w, g + j0 * w, nj * w);
        else
          SIMD(relu_f<float>)(g + j0 * w, g + j0 * w, nj * w);
        std::memcpy(hq, g + j0 * w, sizeof(float) * nj * w);
      }
    }
    const int64_t ncols = std::min(w, B - c0q);  // the batch's columns in this group
    if (!d.lengths && nj % 16 == 0 && ncols % 16 == 0) {
      // the batch's columns back to rows (no finished sequences to mind): 16 columns at a time, each
      // array's (nj, 16) block transposed into a small staging buffer (its rows one cache line longer
      // than nj, so the 16 do not share cache sets) and then copied row by row into place.
      // Transposing straight into the outputs wrote 16 rows x 6 arrays of cold lines at once, as
      // many streams, 4 KB apart for the gates: the training forward took 15.3-15.6 ms that way,
      // 13.9-14.8 ms now, against 12.0-12.4 ms without saving (LSTM T=50 B=32 H=256, 1 thread).
      // What only backward reads (gates, cells), much later, is stored past the caches: medians of
      // alternating processes, the training forward 13.8-13.9 -> 13.5 ms, forward+backward minimums
      // 40.5-40.9 -> 39.5-40.1 ms (the output, read next by the layer above, as usual)
      const int64_t lds = nj + 16;
      float* const stage = keep<float>(kSlotStage, 16 * lds);
      auto put = [&](const float* src, int64_t src_row0, float* dst, int64_t ldd, bool stream) {
        for (int64_t j = 0; j < nj; j += 16) kern.transpose16(src + (src_row0 + j) * w, w, stage + j, lds);
        if (stream)
          kern.copy_rows_stream(stage, lds, 16, nj, dst, ldd);
        else
          for (int64_t r = 0; r < 16; ++r) copy_floats(dst + r * ldd, stage + r * lds, nj);
      };
      for (int64_t k = 0; k < ncols; k += 16) {
        const int64_t row = (t * B + c0q + k) * H + j0;
        put(hq + k, 0, out + row, H, false);
        if (cs) put(cq + k, 0, cs + row, H, true);
        if (hnl) put(nq + k, 0, hnl + row, H, true);
        if (gates)
          for (int64_t gate = 0; gate < G; ++gate)
            put(g + k, gate * H + j0, gates + (t * B + c0q + k) * GH + gate * H + j0, GH, true);
      }
      return;
    }
    for (int64_t k = 0; k < w && c0q + k < B; ++k) {  // the batch's columns back to rows
      const int64_t b = c0q + k;
      const bool live = valid(d, t, b);
      if (!live)  // a finished sequence keeps its state (and cell)
        for (int64_t j = 0; j < nj; ++j) {
          hq[j * w + k] = hp[j * w + k];
          if (lstm) cq[j * w + k] = kept[H * c0q + (j0 + j) * w + k];
        }
      float* o = out + (t * B + b) * H + j0;
      for (int64_t j = 0; j < nj; ++j) o[j] = live ? hq[j * w + k] : 0.0f;
      if (gates)
        for (int64_t gate = 0; gate < G; ++gate) {
          float* gr = gates + (t * B + b) * GH + gate * H + j0;
          const float* src = g + (gate * H + j0) * w + k;
          for (int64_t j = 0; j < nj; ++j) gr[j] = live ? src[j * w] : 0.0f;
        }
      if (cs) {
        float* cr = cs + (t * B + b) * H + j0;
        for (int64_t j = 0; j < nj; ++j) cr[j] = cq[j * w + k];
      }
      if (hnl) {
        float* nr = hnl + (t * B + b) * H + j0;
        for (int64_t j = 0; j < nj; ++j) nr[j] = live ? nq[j * w + k] : 0.0f;
      }
    }
  };
  if (by_groups) {
    parallel_parts(gparts, [&](int64_t part, int64_t np) {
      for (int64_t q = part * ng / np; q < (part + 1) * ng / np; ++q)
        for (int64_t s = 0; s < d.T; ++s) run(s, q, 0, H);
    });
  } else {
    for (int64_t s = 0; s < d.T; ++s)
      parallel_parts(parts, [&](int64_t part, int64_t np) {
        for (int64_t q = 0; q < ng; ++q) run(s, q, part * H / np, (part + 1) * H / np);
      });
  }
  const float* hl = hbuf + (d.T & 1) * H * Bp;
  for (int64_t q = 0; q < ng; ++q) {
    const int64_t c0q = col0(q), w = col0(q + 1) - c0q;
    for (int64_t k = 0; k < w && c0q + k < B; ++k)
      for (int64_t j = 0; j < H; ++j) {
        hn[(c0q + k) * H + j] = hl[H * c0q + j * w + k];
        if (lstm) cn[(c0q + k) * H + j] = ct[H * c0q + j * w + k];
      }
  }
  return true;
}

template <class T>
void rnn_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                 const T* b_ih, const T* b_hh, T* out, T* hn, T* cn, T* gates, T* cs, T* hnl) {
  const int64_t G = rnn_gates(d.mode), GH = G * d.H, B = d.B, H = d.H;
  const bool gru = d.mode == RnnMode::GRU, lstm = d.mode == RnnMode::LSTM;
  // 1. input path for every step at once: xw (T*B, G*H) = x w_ih^T + b_ih (+ b_hh folded in, except for the
  //    GRU, whose hidden path (with b_hh) is kept apart because r multiplies its n part)
  std::vector<T> bias(GH, T(0)), hw(gru ? B * GH : 0);
  for (int64_t k = 0; k < GH; ++k) bias[k] = (b_ih ? b_ih[k] : T(0)) + ((b_hh && !gru) ? b_hh[k] : T(0));
  // A short call at a batch of one to four (a step of generation: sampling, greedy or beam decoding)
  // takes its products straight from W's rows (rows_dot), packing nothing: W is read once per step
  // either way, and packing it costs more passes over it than such a call makes.  The generic path
  // below with rows_dot for BLAS.  Against the packed paths, 1 thread, medians of alternating
  // processes (I=128 H=256 / I=256 H=512): LSTM T=1 B=1 113 -> 33-40 us / 0.7-1.2 ms -> 130 us, T=8
  // B=1 210-268 -> 156-194 us / 1.0-1.5 -> 0.6-0.7 ms, T=4 B=4 level at H=256, 0.9-1.3 -> 0.7 ms at
  // H=512; GRU T=1 B=1 42-60 -> 29-31 us / 248-348 -> 92-97 us.  Longer calls keep the packing (T=16
  // B=2 2.1-2.5 -> 2.6-3.6 ms, T=50 B=4 1.9-2.3 -> 2.6-2.7 ms with rows_dot)
  const PackedKernels* few = nullptr;
  if constexpr (std::is_same_v<T, float>)
    if (B <= 4 && d.T * B <= 16 && conv_direct_width()) few = &packed_kernels(conv_direct_width());
  if constexpr (std::is_same_v<T, float>) if (!few) {  // the packed path takes the input path step by step too
    if (lstm && rnn_forward_t(d, x, w_ih, w_hh, bias.data(), nullptr, h0, c0, out, hn, cn, gates, cs, nullptr)) return;
    if (gru) {  // r and z take both biases, n only b_in (b_hn goes with the hidden path)
      std::vector<float> rz(bias);
      if (b_hh)
        for (int64_t k = 0; k < 2 * H; ++k) rz[k] += b_hh[k];
      if (rnn_forward_t(d, x, w_ih, w_hh, rz.data(), b_hh ? b_hh + 2 * H : nullptr, h0, c0, out, hn, cn, gates, cs,
                        hnl))
        return;
    }
    if (!lstm && !gru && rnn_forward_t(d, x, w_ih, w_hh, bias.data(), nullptr, h0, c0, out, hn, cn, gates, cs, nullptr))
      return;
    if (!gru && rnn_forward_packed(d, x, w_ih, bias.data(), nullptr, h0, c0, w_hh, b_hh, out, hn, cn, gates, cs, hnl))
      return;
  }
  // o (nb, G H) (+)= X (nb, K) @ W^T for W (G H, K), W's rows shared out over the threads
  auto rows_product = [&](const T* X, int64_t nb, const T* W, int64_t K, T* o, bool acc) {
    if constexpr (std::is_same_v<T, float>)
      parallel_for(GH, std::max<int64_t>(64, (int64_t(1) << 16) / std::max<int64_t>(1, K * nb)),
                   [&](int64_t j0, int64_t j1) {
                     few->rows_dot(W + j0 * K, K, j1 - j0, X, K, int(nb), K, o + j0, GH, acc);
                   });
  };
  T* const xw = keep<T>(2, d.T * B * GH);
  if (few) {
    for (int64_t r0 = 0; r0 < d.T * B; r0 += 4) {  // the input path too, four rows at a time
      const int64_t nb = std::min<int64_t>(4, d.T * B - r0);
      for (int64_t r = r0; r < r0 + nb; ++r) std::memcpy(xw + r * GH, bias.data(), sizeof(T) * GH);
      rows_product(x + r0 * d.I, nb, w_ih, d.I, xw + r0 * GH, true);
    }
  } else {
    linear_forward<T>(x, w_ih, bias.data(), xw, d.T * B, d.I, GH);
  }
  if constexpr (std::is_same_v<T, float>) if (!few) {
    if (gru && rnn_forward_packed(d, x, w_ih, bias.data(), xw, h0, c0, w_hh, b_hh, out, hn, cn, gates, cs, hnl))
      return;
  }
  // without saved gates (inference) the activations go through one step's scratch instead
  std::vector<T> scratch(gates ? 0 : B * GH);
  std::vector<T> h(h0, h0 + B * H), c, tc;
  if (lstm) {
    c.assign(c0, c0 + B * H);
    tc.resize(B * H);
  }
  for (int64_t s = 0; s < d.T; ++s) {
    const int64_t t = time_at(d, s);
    T* pre = xw + t * B * GH;  // pre-activations of this step, (B, G*H)
    // 2. hidden path, accumulated onto the input path: one GEMM per step
    if (gru && few) {
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < GH; ++k) hw[b * GH + k] = b_hh ? b_hh[k] : T(0);
      rows_product(h.data(), B, w_hh, H, hw.data(), true);
    } else if (gru) {
      linear_forward<T>(h.data(), w_hh, b_hh, hw.data(), B, H, GH);
    } else if (few) {
      rows_product(h.data(), B, w_hh, H, pre, true);
    } else {
      gemm<T>(false, true, B, GH, H, T(1), h.data(), w_hh, T(1), pre);
    }
    T* gt = gates ? gates + t * B * GH : scratch.data();
    T* ot = out + t * B * H;
    // 3. fused gates, one batch row per task; activations by the dispatched SIMD kernels
    parallel_for(B, std::max<int64_t>(1, kGrain / GH), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        T* o = ot + b * H;
        T* g = gt + b * GH;
        if (!valid(d, t, b)) {  // past this sequence's end: state kept, output 0
          std::fill(o, o + H, T(0));
          std::fill(g, g + GH, T(0));
          if (cs) std::memcpy(cs + (t * B + b) * H, c.data() + b * H, sizeof(T) * H);
          if (hnl) std::fill(hnl + (t * B + b) * H, hnl + (t * B + b + 1) * H, T(0));
          continue;
        }
        const T* p = pre + b * GH;
        T* hb = h.data() + b * H;
        if (lstm) {
          SIMD(sigmoid_f<T>)(p, g, 2 * H);                  // i, f
          SIMD(tanh_f<T>)(p + 2 * H, g + 2 * H, H);         // g
          SIMD(sigmoid_f<T>)(p + 3 * H, g + 3 * H, H);      // o
          T* cb = c.data() + b * H;
          T* tcb = tc.data() + b * H;
          for (int64_t j = 0; j < H; ++j) cb[j] = g[H + j] * cb[j] + g[j] * g[2 * H + j];
          if (cs) std::memcpy(cs + (t * B + b) * H, cb, sizeof(T) * H);
          SIMD(tanh_f<T>)(cb, tcb, H);
          for (int64_t j = 0; j < H; ++j) o[j] = g[3 * H + j] * tcb[j];
        } else if (gru) {
          const T* hr = hw.data() + b * GH;
          T* hl = hnl ? hnl + (t * B + b) * H : nullptr;
          T* tmp = o;  // scratch: the pre-activations of r and z go through g
          for (int64_t j = 0; j < 2 * H; ++j) g[j] = p[j] + hr[j];
          SIMD(sigmoid_f<T>)(g, g, 2 * H);                  // r, z
          for (int64_t j = 0; j < H; ++j) {
            if (hl) hl[j] = hr[2 * H + j];                  // W_hn h + b_hn, saved for backward
            tmp[j] = p[2 * H + j] + g[j] * hr[2 * H + j];
          }
          SIMD(tanh_f<T>)(tmp, g + 2 * H, H);               // n
          for (int64_t j = 0; j < H; ++j) o[j] = (T(1) - g[H + j]) * g[2 * H + j] + g[H + j] * hb[j];
        } else if (d.mode == RnnMode::Tanh) {
          SIMD(tanh_f<T>)(p, o, H);
          std::memcpy(g, o, sizeof(T) * H);
        } else {
          SIMD(relu_f<T>)(p, o, H);
          std::memcpy(g, o, sizeof(T) * H);
        }
        std::memcpy(hb, o, sizeof(T) * H);  // the new state
      }
    });
  }
  std::memcpy(hn, h.data(), sizeof(T) * B * H);
  if (lstm) std::memcpy(cn, c.data(), sizeof(T) * B * H);
}

template <class T>
void rnn_backward(const RnnDims& d, const T* dout, const T* dhn, const T* dcn, const T* x, const T* h0, const T* c0,
                  const T* w_ih, const T* w_hh, const T* out, const T* gates, const T* cs, const T* hnl, T* dx, T* dh0,
                  T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh) {
  const int64_t G = rnn_gates(d.mode), GH = G * d.H, B = d.B, H = d.H;
  // per-step pre-activation gradients of the input path (dxw) and of the hidden path (dhw)
  // (the same array for all but the GRU, whose n gate differs between the two paths); every row of
  // every step is written below, so neither is zeroed first
  const bool gru = d.mode == RnnMode::GRU;
  const bool merged = !gru && dw_ih && dw_hh;
  // With the AVX-512 product on A^T in micro-panels (gemm_at_panels), the merged weight gradient's left
  // operand dxw^T is packed step by step as BPTT writes it, while its rows are in cache, instead of
  // by the product from all of dxw afterwards (a strided pass over T B G H floats); dxw itself is
  // then needed only within its step (dx fused, below, or not asked for), a scratch of one step's rows.
  // LSTM forward+backward, medians of alternating processes: T=50 B=32 I=128 H=256 1 thread minimums
  // 41.2-42.4 -> 40.5-40.8 ms (the product's packing 4.1% of the samples, the panels' now 1.0%), 2
  // threads medians 21.9-23.4 -> 21.2-21.6 ms; T=100 B=64 I=256 H=512 629-643 -> 622-629 ms.
  const PackedKernels* pp = nullptr;
  if constexpr (std::is_same_v<T, float>)
    if (merged && conv_direct_width() == 16 && d.H % 16 == 0 && packed_kernels(16).gemm_at_panels)
      pp = &packed_kernels(16);
  const bool step_dxw = pp && (!dx || d.I % 16 == 0);  // (dx fused below exactly when I is whole vectors)
  T* const dxw = keep<T>(0, (step_dxw ? 1 : d.T) * B * GH);
  T* const dhw = gru ? keep<T>(1, d.T * B * GH) : dxw;
  float* const dxp = pp ? keep<float>(kSlotDxp, d.T * B * GH) : nullptr;
  // For all but the GRU both weight gradients have the same left operand (dxw = dhw): one product
  // dxw^T [x | h_{t-1}], split afterwards, packs dxw once instead of twice.  LSTM T=50 B=32 I=128 H=256,
  // 1 thread, alternating in one process: the two products 15.6-15.9 ms, the one 14.2-14.4 ms (level at
  // T=100 B=64 I=256 H=512); the whole forward+backward, alternating processes, minimums 42.8-43.8 ->
  // 42.1-42.9 ms at 1 thread, 24.7-25.5 -> 23.7-24.0 at 2.  h_{t-1} of row r sits after x_r in a row.
  const int64_t XH = merged ? d.I + H : H, ho = merged ? d.I : 0;
  // (with the micro-panel product, [x | h_{t-1}] goes straight into that product's panels of its right
  // operand instead, which it would otherwise copy it into, once per thread: LSTM T=50 B=32
  // forward+backward, 1 thread, perf: these copies and that packing 3.2% of the samples -> 2.6%)
  T* const hprev = keep<T>(kSlotHprev, pp ? pp->b_panels_size(XH, d.T * B) : d.T * B * XH);  // all written below
  // (on 64-byte boundaries: the recurrent product's accumulators, loaded and stored as whole vectors)
  avector<T> dh(dhn ? avector<T>(dhn, dhn + B * H) : avector<T>(B * H, T(0)));
  avector<T> dc;
  if (d.mode == RnnMode::LSTM) dc = dcn ? avector<T>(dcn, dcn + B * H) : avector<T>(B * H, T(0));
  avector<T> dhp(B * H);
  // h_{t-1} of every step (the state before it): the previous valid output, or h0; without lengths
  // the output of the step before, the steps in parallel (at 2 threads a serial pass here held up
  // the other thread)
  auto put_state = [&](int64_t t, int64_t b, const T* h) {  // h_{t-1} of row b of step t
    if (pp) {
      if constexpr (std::is_same_v<T, float>) {
        pp->pack_b_panels(x + (t * B + b) * d.I, 0, d.I, t * B + b, XH, d.T * B, hprev);
        pp->pack_b_panels(h, d.I, H, t * B + b, XH, d.T * B, hprev);
      }
    } else if (merged) {
      std::memcpy(hprev + (t * B + b) * XH, x + (t * B + b) * d.I, sizeof(T) * d.I);
      std::memcpy(hprev + (t * B + b) * XH + ho, h, sizeof(T) * H);
    } else {
      std::memcpy(hprev + (t * B + b) * H, h, sizeof(T) * H);
    }
  };
  if (!d.lengths) {
    parallel_for(d.T, 1, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s)
        for (int64_t b = 0; b < B; ++b)
          put_state(time_at(d, s), b, s == 0 ? h0 + b * H : out + (time_at(d, s - 1) * B + b) * H);
    });
  } else {
    std::vector<T> h(h0, h0 + B * H);
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = time_at(d, s);
      for (int64_t b = 0; b < B; ++b) put_state(t, b, h.data() + b * H);
      for (int64_t b = 0; b < B; ++b)
        if (valid(d, t, b)) std::memcpy(h.data() + b * H, out + t * B * H + b * H, sizeof(T) * H);
    }
  }
  std::vector<T> tcs(d.mode == RnnMode::LSTM ? B * H : 0);
  // Rows of the batch never meet in BPTT: each part takes a block of rows through every step, with
  // no barrier between steps (W_hh is only read).
  const int64_t parts = std::min<int64_t>({max_threads(), std::max<int64_t>(1, B * GH * H / (int64_t(1) << 16)), B});
  // W_hh's columns in panels of a few vectors, each (G*H, width) contiguous, for the packed product
  // dh_{t-1} (rows, H) = dhw_t (rows, G*H) @ W_hh (float32 with H a multiple of the SIMD width).  The
  // panel width is the one whose tiles hold the most accumulators on average over a part's rows: on
  // AVX2 (16 registers) 2 vectors (tiles of up to 6 rows) or 3 (up to 4 rows), on AVX-512 4 (6 rows) or
  // 3 (8 rows); a batch of 32 rows runs as 8 tiles of 4 x 3 vectors (12 accumulators each) rather than
  // 6 tiles of 5-6 x 2 (10.7 on average).  The last panel takes what remains.  LSTM T=50 B=32 H=256
  // forward+backward, 1 thread: BPTT's tiles took 1.10-1.12 times the forward's tile samples (the same
  // multiply-adds) with 2-vector panels, 1.07 with 3; median 71.3 -> 70.5 ms, alternating in one process.
  struct Panel {
    int64_t c0;  // its first column (its packed block starts at c0 * G*H)
    int nv;      // its width in vectors
  };
  const PackedKernels* pk = nullptr;
  int U = 0;
  std::vector<Panel> hpanels, ipanels;
  avector<T> wcols, wicols;  // (the tile's packed operands: W_hh's, and W_ih's when dx is fused)
  auto plan = [&](int64_t n, int v) {  // n columns (whole vectors) in panels of v vectors
    std::vector<Panel> pl;
    int64_t m = n / U, c = 0;
    auto add = [&](int nv) {
      pl.push_back({c, nv});
      c += nv * U;
      m -= nv;
    };
    if (v == 3) {  // (3 + 1 as 2 + 2)
      while (m >= 3 && m != 4) add(3);
      while (m > 0) add(int(std::min<int64_t>(m, 2)));
    } else {
      while (m >= v) add(v);
      if (m > 0) add(int(m));
    }
    return pl;
  };
  auto pack_cols = [&](avector<T>& dst, const std::vector<Panel>& pl, const T* w, int64_t n) {
    dst.resize(GH * n);
    parallel_for(GH, 64, [&](int64_t k0, int64_t k1) {
      for (const Panel& p : pl) {
        const int64_t pw = p.nv * U;
        for (int64_t k = k0; k < k1; ++k)
          std::memcpy(dst.data() + p.c0 * GH + k * pw, w + k * n + p.c0, sizeof(T) * pw);
      }
    });
  };
  if constexpr (std::is_same_v<T, float>) {
    U = conv_direct_width();
    if (U && H % U == 0) {
      pk = &packed_kernels(U);
      const int64_t R = std::max<int64_t>(1, B / parts);  // (a part's rows, about)
      auto fill = [&](int nv) { return double(nv) * R / double((R + pk->rows(nv) - 1) / pk->rows(nv)); };
      const int wide = U == 16 ? 4 : 2;
      const int v = fill(3) > fill(wide) ? 3 : wide;
      hpanels = plan(H, v);
      pack_cols(wcols, hpanels, w_hh, H);
      // dx_t = dxw_t W_ih in the loop too, on W_ih's columns packed the same way, while the step's dxw
      // rows are fresh in cache (after the loop, one GEMM read them all again: 1600 x 128 x 1024 at
      // LSTM T=50), and the bias gradients (column sums of dxw and dhw) summed there per part (after
      // the loop, a pass over all of dxw): LSTM T=50 B=32 I=128 H=256 forward+backward, alternating in
      // one process, 180 runs each: 1 thread median 73.7 -> 70.5 ms, 10th percentile 62.4 -> 60.9; 2
      // threads 43.8 -> 42.8, 39.4 -> 38.3; GRU 1 thread 59.0 -> 57.2, 51.6 -> 51.1
      if (dx && d.I % U == 0) {
        ipanels = plan(d.I, v);
        pack_cols(wicols, ipanels, w_ih, d.I);
      }
    }
  }
  const bool fuse_dx = !ipanels.empty();
  const bool sum_db = db_ih || db_hh;
  avector<T> dbs(sum_db ? (gru ? 2 : 1) * parts * GH : 0, T(0));  // per part: dxw's sums, then (GRU) dhw's
  parallel_parts(parts, [&](int64_t part, int64_t np) {
    const int64_t rb = part * B / np, re = (part + 1) * B / np;
    T* const dbx = sum_db ? dbs.data() + part * GH : nullptr;
    T* const dbh = sum_db && gru ? dbs.data() + (parts + part) * GH : nullptr;
    T* cur = dh.data();   // dL/dh_t of this part's rows (full-size buffers, rows rb..re used)
    T* prev = dhp.data();  // dL/dh_{t-1}, being built
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = time_at(d, s);
      const T* gt = gates + t * B * GH;
      const T* hp = gru ? hprev + t * B * H : nullptr;  // h_{t-1} rows: only the GRU reads them here
      T* dxt = dxw + (step_dxw ? 0 : t) * B * GH;
      T* dht = gru ? dhw + t * B * GH : dxt;
      for (int64_t b = rb; b < re; ++b) {
        T* dhb = cur + b * H;
        T* dpb = prev + b * H;
        if (!valid(d, t, b)) {  // identity step: the gradient passes through, nothing to this step
          std::memcpy(dpb, dhb, sizeof(T) * H);
          std::fill_n(dxt + b * GH, GH, T(0));
          if (gru) std::fill_n(dht + b * GH, GH, T(0));
          continue;
        }
        if (dout && d.mode != RnnMode::LSTM) {  // total dL/dh_t (no dout: the outputs were not used)
          const T* dob = dout + (t * B + b) * H;
          for (int64_t j = 0; j < H; ++j) dhb[j] += dob[j];
        }
        const T* g = gt + b * GH;
        T* xr = dxt + b * GH;
        T* hr = dht + b * GH;
        switch (d.mode) {
          case RnnMode::LSTM: {
            const T* cv = cs + (t * B + b) * H;
            const T* cprev = s == 0 ? c0 + b * H : cs + (time_at(d, s - 1) * B + b) * H;
            if constexpr (std::is_same_v<T, float>) {
              if (pk) {  // dout was not added above: the kernel does it
                pk->lstm_cell_backward(g, cv, cprev, dout ? dout + (t * B + b) * H : nullptr, dhb, dc.data() + b * H, xr,
                                       dpb, H);
                break;
              }
            }
            if (dout) {  // total dL/dh_t (no dout: the outputs were not used)
              const T* dob = dout + (t * B + b) * H;
              for (int64_t j = 0; j < H; ++j) dhb[j] += dob[j];
            }
            T* tc = tcs.data() + b * H;
            T* dcb = dc.data() + b * H;
            SIMD(tanh_f<T>)(cv, tc, H);
            for (int64_t j = 0; j < H; ++j) {
              const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
              const T dcv = dcb[j] + dhb[j] * o * (T(1) - tc[j] * tc[j]);
              xr[j] = dcv * gg * i * (T(1) - i);
              xr[H + j] = dcv * cprev[j] * f * (T(1) - f);
              xr[2 * H + j] = dcv * i * (T(1) - gg * gg);
              xr[3 * H + j] = dhb[j] * tc[j] * o * (T(1) - o);
              dcb[j] = dcv * f;
              dpb[j] = T(0);
            }
            break;
          }
          case RnnMode::GRU: {
            const T* hl = hnl + (t * B + b) * H;
            const T* hpb = hp + b * H;
            for (int64_t j = 0; j < H; ++j) {
              const T r = g[j], z = g[H + j], n = g[2 * H + j];
              const T dan = dhb[j] * (T(1) - z) * (T(1) - n * n);
              const T dr = dan * hl[j] * r * (T(1) - r), dz = dhb[j] * (hpb[j] - n) * z * (T(1) - z);
              xr[j] = hr[j] = dr;
              xr[H + j] = hr[H + j] = dz;
              xr[2 * H + j] = dan;
              hr[2 * H + j] = dan * r;
              dpb[j] = dhb[j] * z;
            }
            break;
          }
          case RnnMode::Tanh: {
            const T* hv = out + (t * B + b) * H;
            for (int64_t j = 0; j < H; ++j) {
              xr[j] = dhb[j] * (T(1) - hv[j] * hv[j]);
              dpb[j] = T(0);
            }
            break;
          }
          default: {
            const T* hv = out + (t * B + b) * H;
            for (int64_t j = 0; j < H; ++j) {
              xr[j] = hv[j] > T(0) ? dhb[j] : T(0);
              dpb[j] = T(0);
            }
          }
        }
        if (dbx)
          for (int64_t k = 0; k < GH; ++k) dbx[k] += xr[k];
        if (dbh)
          for (int64_t k = 0; k < GH; ++k) dbh[k] += hr[k];
      }
      if (pp)
        pp->pack_at_panels(reinterpret_cast<const float*>(dxt) + rb * GH, GH, re - rb, GH, t * B + rb, d.T * B, dxp);
      // dh_{t-1} = (direct part) + dhw_t w_hh; rows of ended sequences have dhw = 0
      if (pk) {
        // C's rows (ldc apart) += or, with set, = A's rows (G*H long) @ the packed columns, panel by
        // panel, each in chunks of K whose panel rows stay in L1 (every row tile reuses them: measured
        // faster than unchunked here), its rows in tiles as even as they come
        auto product = [&](const T* A, const avector<T>& cols, const std::vector<Panel>& pl, T* C, int64_t ldc,
                           bool set) {
          for (const Panel& p : pl) {
            const int MR = pk->rows(p.nv);
            const int64_t pw = p.nv * U, KC = (int64_t(32) << 10) / (pw * int64_t(sizeof(float)));
            for (int64_t k0 = 0; k0 < GH; k0 += KC)
              for (int64_t i = 0, n = (re - rb + MR - 1) / MR; i < n; ++i) {
                const int64_t r0 = rb + i * (re - rb) / n, r1 = rb + (i + 1) * (re - rb) / n;
                (set && k0 == 0 ? pk->tile_set : pk->tile)(
                    reinterpret_cast<const float*>(A) + r0 * GH + k0, GH,
                    reinterpret_cast<const float*>(cols.data()) + p.c0 * GH + k0 * pw, std::min(KC, GH - k0),
                    reinterpret_cast<float*>(C) + r0 * ldc + p.c0, ldc, U, int(r1 - r0), p.nv);
              }
          }
        };
        product(dht, wcols, hpanels, prev, H, false);
        if (fuse_dx) product(dxt, wicols, ipanels, dx + t * B * d.I, d.I, true);  // dx_t = dxw_t W_ih
      } else if (re > rb) {
        gemm<T>(false, false, re - rb, H, GH, T(1), dht + rb * GH, w_hh, T(1), prev + rb * H);
      }
      std::swap(cur, prev);
    }
    if (cur != dh.data()) std::memcpy(dh.data() + rb * H, cur + rb * H, sizeof(T) * (re - rb) * H);
  });
  if (dh0) std::memcpy(dh0, dh.data(), sizeof(T) * B * H);
  if (dc0 && d.mode == RnnMode::LSTM) std::memcpy(dc0, dc.data(), sizeof(T) * B * H);
  // weight gradients for all steps at once
  if (merged) {
    T* const dw = keep<T>(kSlotDw, GH * XH);
    if (pp) {  // C's rows in blocks of whole 48s (the product's row blocks: whole panels), one per thread
      const int64_t TB = d.T * B, nb = (GH + 47) / 48;
      const int64_t parts = GH * XH * TB < (int64_t(1) << 21) ? 1 : std::min<int64_t>(max_threads(), nb);
      parallel_parts(parts, [&](int64_t p, int64_t np) {
        const int64_t m0 = p * nb / np * 48, m1 = std::min(GH, (p + 1) * nb / np * 48);
        if (m1 > m0)
          pp->gemm_at_panels(m1 - m0, XH, TB, dxp + m0 * TB, nullptr, XH, reinterpret_cast<float*>(dw) + m0 * XH, XH,
                             reinterpret_cast<const float*>(hprev));
      });
    } else {
      gemm_weight_grad<T>(GH, XH, d.T * B, dxw, hprev, dw);
    }
    parallel_for(GH, 64, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        std::memcpy(dw_ih + j * d.I, dw + j * XH, sizeof(T) * d.I);
        std::memcpy(dw_hh + j * H, dw + j * XH + ho, sizeof(T) * H);
      }
    });
    if (dx && !fuse_dx) linear_backward<T>(dxw, x, w_ih, dx, nullptr, nullptr, d.T * B, d.I, GH);
  } else {
    linear_backward<T>(dxw, x, w_ih, fuse_dx ? nullptr : dx, dw_ih, nullptr, d.T * B, d.I, GH);
    if (dw_hh) gemm_weight_grad<T>(GH, H, d.T * B, dhw, hprev, dw_hh);
  }
  if (sum_db)  // the parts' sums, in part order; one gradient for both paths but the GRU's
    for (int64_t k = 0; k < GH; ++k) {
      T sx = T(0), sh = T(0);
      for (int64_t p = 0; p < parts; ++p) {
        sx += dbs[p * GH + k];
        if (gru) sh += dbs[(parts + p) * GH + k];
      }
      if (db_ih) db_ih[k] = sx;
      if (db_hh) db_hh[k] = gru ? sh : sx;
    }
}

#define FASTDL_INSTANTIATE(T)                                                                                  \
  template void rnn_forward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*, const T*,      \
                               const T*, T*, T*, T*, T*, T*, T*);                                              \
  template void rnn_backward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*, const T*,     \
                                const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                T*, T*);
FASTDL_INSTANTIATE(float)
FASTDL_INSTANTIATE(double)
#undef FASTDL_INSTANTIATE

}  // namespace fastdl
