// Word vectors: the threaded drivers of word2vec and GloVe, and the co-occurrence counter.
#include "wordvec.h"

#include <atomic>
#include <mutex>

#include "common.h"
#include "simd.h"

namespace fastdl {

W2VStats word2vec_train(float* syn0, float* syn1neg, const W2VCorpus& c, const W2VConfig& cfg, int64_t job_begin,
                        int64_t job_end, int64_t workers) {
  std::atomic<int64_t> next{job_begin};
  std::mutex mu;
  W2VStats total;
  const auto job_fn = SIMD(w2v_job);
  const double span = cfg.alpha0 - cfg.alpha_min;
  parallel_parts(std::max<int64_t>(1, workers), [&](int64_t, int64_t) {
    std::vector<int32_t> sen;
    std::vector<float> work;
    W2VStats mine;
    for (int64_t j; (j = next.fetch_add(1, std::memory_order_relaxed)) < job_end;) {
      // the learning rate falls linearly with the words before this job (not with how fast the
      // other threads went), so it is the same for any number of workers
      const double done = cfg.progress_base + double(c.offsets[c.job_starts[j]]);
      const double a = std::max(cfg.alpha_min, cfg.alpha0 - span * done / cfg.progress_total);
      job_fn(syn0, syn1neg, c, cfg, j, float(a), mine, sen, work);
    }
    std::lock_guard<std::mutex> lock(mu);
    total.loss += mine.loss;
    total.examples += mine.examples;
    total.words += mine.words;
  });
  return total;
}

double glove_train(float* W, float* Wc, float* b, float* bc, float* gW, float* gWc, float* gb, float* gbc,
                   const int32_t* rows, const int32_t* cols, const float* logx, const float* fx, int64_t N,
                   int64_t D, double eta, int64_t workers, int64_t* bad) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(workers, N));
  std::vector<double> loss(parts, 0.0);
  std::vector<int64_t> nbad(parts, 0);
  const auto range_fn = SIMD(glove_range);
  parallel_parts(parts, [&](int64_t p, int64_t np) {
    const int64_t e0 = N * p / np, e1 = N * (p + 1) / np;
    loss[p] = range_fn(W, Wc, b, bc, gW, gWc, gb, gbc, rows, cols, logx, fx, e0, e1, D, float(eta), &nbad[p]);
  });
  double sum = 0;
  *bad = 0;
  for (int64_t p = 0; p < parts; ++p) sum += loss[p], *bad += nbad[p];
  return sum;
}

namespace {

inline uint64_t cooc_key(const Cooc& c) { return (uint64_t(uint32_t(c.i)) << 32) | uint32_t(c.j); }

// Sorts a buffer by (i, j) and sums the entries of equal pairs.
void sort_compact(std::vector<Cooc>& v) {
  std::sort(v.begin(), v.end(), [](const Cooc& a, const Cooc& b) { return cooc_key(a) < cooc_key(b); });
  size_t o = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    if (o && cooc_key(v[o - 1]) == cooc_key(v[k]))
      v[o - 1].x += v[k].x;
    else
      v[o++] = v[k];
  }
  v.resize(o);
}

// Two sorted, compacted runs into one.
std::vector<Cooc> merge_runs(const std::vector<Cooc>& a, const std::vector<Cooc>& b) {
  std::vector<Cooc> out;
  out.reserve(a.size() + b.size());
  size_t p = 0, q = 0;
  while (p < a.size() && q < b.size()) {
    const uint64_t ka = cooc_key(a[p]), kb = cooc_key(b[q]);
    if (ka < kb) out.push_back(a[p++]);
    else if (kb < ka) out.push_back(b[q++]);
    else out.push_back({a[p].i, a[p].j, a[p].x + b[q].x}), ++p, ++q;
  }
  out.insert(out.end(), a.begin() + p, a.end());
  out.insert(out.end(), b.begin() + q, b.end());
  return out;
}

}  // namespace

std::vector<Cooc> glove_cooccur(const int32_t* ids, const int64_t* offsets, int64_t S, int64_t V, int64_t window,
                                bool symmetric, int64_t dense_entries, int64_t buffer_entries) {
  // Dense table: row i holds columns j < cap[i] = min(V, P / (i + 1)), P the largest product whose
  // table fits dense_entries (frequent words have small indices, so their pairs land here).
  std::vector<int64_t> cap(V), start(V + 1);
  auto total_for = [&](int64_t P) {
    int64_t t = 0;
    for (int64_t i = 0; i < V; ++i) t += std::min<int64_t>(V, P / (i + 1));
    return t;
  };
  int64_t lo = 0, hi = V * V;  // V <= 2^31 - 1 is checked by the caller; V * V fits int64
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (total_for(mid) <= dense_entries) lo = mid;
    else hi = mid - 1;
  }
  start[0] = 0;
  for (int64_t i = 0; i < V; ++i) {
    cap[i] = std::min<int64_t>(V, lo / (i + 1));
    start[i + 1] = start[i] + cap[i];
  }
  std::vector<double> dense(size_t(start[V]), 0.0);
  std::vector<Cooc> buf;
  buf.reserve(size_t(std::max<int64_t>(1, buffer_entries)));
  std::vector<std::vector<Cooc>> runs;  // sizes roughly halve towards the back (merged like a binary counter)
  auto flush = [&] {
    if (buf.empty()) return;
    sort_compact(buf);
    runs.emplace_back();
    runs.back().swap(buf);  // the run keeps the buffer's storage; a fresh buffer is reserved
    buf.reserve(size_t(std::max<int64_t>(1, buffer_entries)));
    while (runs.size() >= 2 && runs[runs.size() - 2].size() <= 2 * runs.back().size()) {
      auto m = merge_runs(runs[runs.size() - 2], runs.back());
      runs.pop_back();
      runs.back().swap(m);
    }
  };
  auto add = [&](int32_t i, int32_t j, float w) {
    if (j < cap[i]) {
      dense[size_t(start[i] + j)] += w;
    } else {
      buf.push_back({i, j, w});
      if (int64_t(buf.size()) >= buffer_entries) flush();
    }
  };
  for (int64_t s = 0; s < S; ++s) {
    const int64_t a = offsets[s], e = offsets[s + 1];
    for (int64_t p = a; p < e; ++p) {
      const int32_t w2 = ids[p];
      for (int64_t q = std::max(a, p - window); q < p; ++q) {
        const int32_t w1 = ids[q];
        const float w = 1.f / float(p - q);
        add(w1, w2, w);
        if (symmetric) add(w2, w1, w);
      }
    }
  }
  flush();
  while (runs.size() >= 2) {
    auto m = merge_runs(runs[runs.size() - 2], runs.back());
    runs.pop_back();
    runs.back().swap(m);
  }
  std::vector<Cooc> sparse;
  if (!runs.empty()) sparse.swap(runs.back());
  runs.clear();
  // the dense rows and the sparse run, merged in (i, j) order (their pairs are disjoint)
  std::vector<Cooc> out;
  int64_t nd = 0;
  for (double v : dense) nd += v != 0.0;
  out.reserve(size_t(nd) + sparse.size());
  size_t q = 0;
  for (int64_t i = 0; i < V; ++i) {
    const double* row = dense.data() + start[i];
    for (int64_t j = 0; j < cap[i]; ++j)
      if (row[j] != 0.0) out.push_back({int32_t(i), int32_t(j), float(row[j])});
    while (q < sparse.size() && sparse[q].i == i) out.push_back(sparse[q++]);
  }
  return out;
}

}  // namespace fastdl
