#include "rnn.h"

#include <vector>

#include "common.h"
#include "gemm.h"

namespace fastdl {

namespace {

template <class T> inline T sigm(T v) { return T(1) / (T(1) + std::exp(-v)); }

inline int64_t time_at(const RnnDims& d, int64_t s) { return d.reverse ? d.T - 1 - s : s; }
inline bool valid(const RnnDims& d, int64_t t, int64_t b) { return !d.lengths || t < d.lengths[b]; }

constexpr int64_t kGrain = 4096;  // (b, j) gate elements per thread

}  // namespace

template <class T>
void rnn_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                 const T* b_ih, const T* b_hh, T* out, T* hn, T* cn, T* gates, T* cs, T* hnl) {
  const int64_t G = rnn_gates(d.mode), GH = G * d.H, B = d.B, H = d.H;
  // 1. input path for every step at once: xw (T*B, G*H) = x w_ih^T + b_ih
  std::vector<T> xw(d.T * B * GH), hw(B * GH);
  linear_forward<T>(x, w_ih, b_ih, xw.data(), d.T * B, d.I, GH);
  std::vector<T> h(h0, h0 + B * H), c;
  if (d.mode == RnnMode::LSTM) c.assign(c0, c0 + B * H);
  for (int64_t s = 0; s < d.T; ++s) {
    const int64_t t = time_at(d, s);
    // 2. hidden path: hw (B, G*H) = h w_hh^T + b_hh
    linear_forward<T>(h.data(), w_hh, b_hh, hw.data(), B, H, GH);
    const T* xt = xw.data() + t * B * GH;
    T* gt = gates + t * B * GH;
    T* ot = out + t * B * H;
    // 3. fused gates
    parallel_for(B * H, kGrain, [&](int64_t a, int64_t e) {
      for (int64_t q = a; q < e; ++q) {
        const int64_t b = q / H, j = q % H;
        const T* xr = xt + b * GH;
        const T* hr = hw.data() + b * GH;
        T* gr = gt + b * GH;
        if (!valid(d, t, b)) {  // past this sequence's end: state kept, output 0, nothing saved that matters
          ot[b * H + j] = T(0);
          for (int64_t k = 0; k < G; ++k) gr[k * H + j] = T(0);
          if (d.mode == RnnMode::LSTM) cs[t * B * H + b * H + j] = c[b * H + j];
          if (d.mode == RnnMode::GRU) hnl[t * B * H + b * H + j] = T(0);
          continue;
        }
        T hv;
        switch (d.mode) {
          case RnnMode::LSTM: {
            const T i = sigm(xr[j] + hr[j]), f = sigm(xr[H + j] + hr[H + j]);
            const T g = std::tanh(xr[2 * H + j] + hr[2 * H + j]), o = sigm(xr[3 * H + j] + hr[3 * H + j]);
            const T cv = f * c[b * H + j] + i * g;
            gr[j] = i; gr[H + j] = f; gr[2 * H + j] = g; gr[3 * H + j] = o;
            cs[t * B * H + b * H + j] = cv;
            c[b * H + j] = cv;
            hv = o * std::tanh(cv);
            break;
          }
          case RnnMode::GRU: {
            const T r = sigm(xr[j] + hr[j]), z = sigm(xr[H + j] + hr[H + j]);
            const T hnv = hr[2 * H + j];  // W_hn h + b_hn
            const T n = std::tanh(xr[2 * H + j] + r * hnv);
            gr[j] = r; gr[H + j] = z; gr[2 * H + j] = n;
            hnl[t * B * H + b * H + j] = hnv;
            hv = (T(1) - z) * n + z * h[b * H + j];
            break;
          }
          case RnnMode::Tanh:
            hv = std::tanh(xr[j] + hr[j]);
            gr[j] = hv;
            break;
          default: {
            const T a0 = xr[j] + hr[j];
            hv = a0 < T(0) ? T(0) : a0;
            gr[j] = hv;
          }
        }
        ot[b * H + j] = hv;
      }
    });
    // the new state (kept for sequences that have ended)
    for (int64_t b = 0; b < B; ++b)
      if (valid(d, t, b)) std::memcpy(h.data() + b * H, ot + b * H, sizeof(T) * H);
  }
  std::memcpy(hn, h.data(), sizeof(T) * B * H);
  if (d.mode == RnnMode::LSTM) std::memcpy(cn, c.data(), sizeof(T) * B * H);
}

template <class T>
void rnn_backward(const RnnDims& d, const T* dout, const T* dhn, const T* dcn, const T* x, const T* h0, const T* c0,
                  const T* w_ih, const T* w_hh, const T* out, const T* gates, const T* cs, const T* hnl, T* dx, T* dh0,
                  T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh) {
  const int64_t G = rnn_gates(d.mode), GH = G * d.H, B = d.B, H = d.H;
  // per-step pre-activation gradients of the input path (dxw) and of the hidden path (dhw)
  std::vector<T> dxw(d.T * B * GH, T(0)), dhw(d.T * B * GH, T(0)), hprev(d.T * B * H);
  std::vector<T> dh(dhn ? std::vector<T>(dhn, dhn + B * H) : std::vector<T>(B * H, T(0)));
  std::vector<T> dc;
  if (d.mode == RnnMode::LSTM) dc = dcn ? std::vector<T>(dcn, dcn + B * H) : std::vector<T>(B * H, T(0));
  std::vector<T> dhp(B * H);
  // h_{t-1} of every step (the state before it): the previous valid output, or h0
  {
    std::vector<T> h(h0, h0 + B * H);
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = time_at(d, s);
      std::memcpy(hprev.data() + t * B * H, h.data(), sizeof(T) * B * H);
      for (int64_t b = 0; b < B; ++b)
        if (valid(d, t, b)) std::memcpy(h.data() + b * H, out + t * B * H + b * H, sizeof(T) * H);
    }
  }
  for (int64_t s = d.T - 1; s >= 0; --s) {
    const int64_t t = time_at(d, s);
    const T* gt = gates + t * B * GH;
    const T* hp = hprev.data() + t * B * H;
    T* dxt = dxw.data() + t * B * GH;
    T* dht = dhw.data() + t * B * GH;
    parallel_for(B * H, kGrain, [&](int64_t a, int64_t e) {
      for (int64_t q = a; q < e; ++q) {
        const int64_t b = q / H, j = q % H;
        if (!valid(d, t, b)) {  // identity step: gradients pass through, nothing to this step
          dhp[q] = dh[q];
          continue;
        }
        const T g_h = dh[q] + dout[t * B * H + q];
        const T* gr = gt + b * GH;
        T* xr = dxt + b * GH;
        T* hr = dht + b * GH;
        switch (d.mode) {
          case RnnMode::LSTM: {
            const T i = gr[j], f = gr[H + j], g = gr[2 * H + j], o = gr[3 * H + j];
            const T cv = cs[t * B * H + q];
            const T cprev = s == 0 ? c0[q] : cs[time_at(d, s - 1) * B * H + q];
            const T tc = std::tanh(cv);
            const T dcv = dc[q] + g_h * o * (T(1) - tc * tc);
            const T di = dcv * g * i * (T(1) - i), df = dcv * cprev * f * (T(1) - f);
            const T dg = dcv * i * (T(1) - g * g), d_o = g_h * tc * o * (T(1) - o);
            xr[j] = hr[j] = di;
            xr[H + j] = hr[H + j] = df;
            xr[2 * H + j] = hr[2 * H + j] = dg;
            xr[3 * H + j] = hr[3 * H + j] = d_o;
            dc[q] = dcv * f;
            dhp[q] = T(0);
            break;
          }
          case RnnMode::GRU: {
            const T r = gr[j], z = gr[H + j], n = gr[2 * H + j], hnv = hnl[t * B * H + q];
            const T dan = g_h * (T(1) - z) * (T(1) - n * n);
            const T dr = dan * hnv * r * (T(1) - r), dz = g_h * (hp[q] - n) * z * (T(1) - z);
            xr[j] = hr[j] = dr;
            xr[H + j] = hr[H + j] = dz;
            xr[2 * H + j] = dan;
            hr[2 * H + j] = dan * r;
            dhp[q] = g_h * z;
            break;
          }
          case RnnMode::Tanh: {
            const T hv = out[t * B * H + q];
            xr[j] = hr[j] = g_h * (T(1) - hv * hv);
            dhp[q] = T(0);
            break;
          }
          default: {
            const T hv = out[t * B * H + q];
            xr[j] = hr[j] = hv > T(0) ? g_h : T(0);
            dhp[q] = T(0);
          }
        }
      }
    });
    // dh_{t-1} = (direct part) + dhw_t w_hh; rows of ended sequences have dhw = 0
    gemm<T>(false, false, B, H, GH, T(1), dht, w_hh, T(1), dhp.data());
    std::swap(dh, dhp);
  }
  if (dh0) std::memcpy(dh0, dh.data(), sizeof(T) * B * H);
  if (dc0 && d.mode == RnnMode::LSTM) std::memcpy(dc0, dc.data(), sizeof(T) * B * H);
  // weight gradients for all steps at once
  linear_backward<T>(dxw.data(), x, w_ih, dx, dw_ih, db_ih, d.T * B, d.I, GH);
  if (dw_hh) gemm<T>(true, false, GH, H, d.T * B, T(1), dhw.data(), hprev.data(), T(0), dw_hh);
  if (db_hh) {
    for (int64_t k = 0; k < GH; ++k) db_hh[k] = T(0);
    for (int64_t r = 0; r < d.T * B; ++r) {
      const T* row = dhw.data() + r * GH;
      for (int64_t k = 0; k < GH; ++k) db_hh[k] += row[k];
    }
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
