// Word vectors: word2vec (skip-gram and CBOW with negative sampling) and GloVe (co-occurrence
// counting and AdaGrad on the weighted least squares), trained in place on float32 matrices.
//
// The corpus is one int32 array of word indices with sentence offsets; training runs over "jobs"
// (runs of whole sentences, about 10,000 words each) that the threads claim from a counter.  A
// job's random stream and learning rate depend on the job alone (seed, epoch, job index, its
// position in the corpus), so one worker is bit-reproducible, and several workers differ only by
// the order of their lock-free (Hogwild) updates, as in every word2vec implementation.
#pragma once
#include <cstdint>
#include <vector>

namespace fastdl {

// One 64-bit output of splitmix64: the generator of the word-vector trainers (simple enough for the
// NumPy reference to replay exactly).
struct SplitMix {
  uint64_t s;
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t next() { return mix(s += 0x9E3779B97F4A7C15ull); }
};
// The stream of job `job` in epoch `epoch` for `seed`.
inline uint64_t w2v_job_state(uint64_t seed, uint64_t epoch, uint64_t job) {
  return SplitMix::mix(SplitMix::mix(seed ^ 0xD1B54A32D192ED03ull) + epoch * 0x9E3779B97F4A7C15ull + job);
}

struct W2VCorpus {
  const int32_t* ids;        // all sentences, concatenated
  const int64_t* offsets;    // sentence s is ids[offsets[s], offsets[s+1])
  const int64_t* job_starts; // job j is sentences [job_starts[j], job_starts[j+1])
  const float* keep;         // per word: probability of keeping an occurrence (null: keep all)
  const float* alias_prob;   // noise distribution as an alias table: draw k uniform, keep k with
  const int32_t* alias_idx;  // probability alias_prob[k], else take alias_idx[k]
};

struct W2VConfig {
  int64_t V = 0, D = 0;
  bool sg = true, cbow_mean = true, compute_loss = true;
  int64_t window = 5, negative = 5;
  double alpha0 = 0.025, alpha_min = 1e-4;  // linear decay over [0, progress_total) words
  double progress_base = 0, progress_total = 1;
  uint64_t seed = 0, epoch = 0;
};

struct W2VStats {
  double loss = 0;       // sum of the negative-sampling losses of the examples
  int64_t examples = 0;  // (context, word) pairs for skip-gram, predicted words for CBOW
  int64_t words = 0;     // corpus words of the jobs run (before subsampling)
};

// Runs jobs [job_begin, job_end) over `workers` parts of the thread pool, updating syn0 (V, D) and
// syn1neg (V, D) in place.
W2VStats word2vec_train(float* syn0, float* syn1neg, const W2VCorpus& corpus, const W2VConfig& cfg, int64_t job_begin,
                        int64_t job_end, int64_t workers);

struct Cooc {
  int32_t i, j;
  float x;
};
// Co-occurrence counts within each sentence: word j at distance d <= window after word i adds 1/d
// to X[i][j] (and to X[j][i] when symmetric).  Pairs of frequent words (index product under a bound
// chosen so that at most `dense_entries` doubles are used) are counted in a dense table; the rest go
// to a buffer of `buffer_entries` triples that is sorted and merged into runs when full.  Returns
// the non-zero entries sorted by (i, j).
std::vector<Cooc> glove_cooccur(const int32_t* ids, const int64_t* offsets, int64_t S, int64_t V, int64_t window,
                                bool symmetric, int64_t dense_entries, int64_t buffer_entries);

// One epoch of GloVe's AdaGrad over the entries in their given order, split into `workers`
// contiguous parts: W, Wc (V, D), b, bc (V) and their squared-gradient sums (started at 1) updated
// in place.  logx and fx are log X and the weight f(X) of each entry.  Returns the sum of the
// weighted squared errors / 2 and counts entries whose error was not finite (skipped) in *bad.
double glove_train(float* W, float* Wc, float* b, float* bc, float* gW, float* gWc, float* gb, float* gbc,
                   const int32_t* rows, const int32_t* cols, const float* logx, const float* fx, int64_t N,
                   int64_t D, double eta, int64_t workers, int64_t* bad);

// The per-job and per-range kernels (wordvec_kernels.inc), compiled portable and with AVX2+FMA.
#define FASTDL_WORDVEC_DECLARE                                                                          \
  void w2v_job(float* syn0, float* syn1, const W2VCorpus& c, const W2VConfig& cfg, int64_t job, float alpha, \
               W2VStats& st, std::vector<int32_t>& sen, std::vector<float>& work);                       \
  double glove_range(float* W, float* Wc, float* b, float* bc, float* gW, float* gWc, float* gb, float* gbc, \
                     const int32_t* rows, const int32_t* cols, const float* logx, const float* fx, int64_t e0, \
                     int64_t e1, int64_t D, float eta, int64_t* bad);
namespace base {
FASTDL_WORDVEC_DECLARE
}
#ifdef FASTDL_HAVE_AVX2_BUILD
namespace avx2 {
FASTDL_WORDVEC_DECLARE
}
#endif
#undef FASTDL_WORDVEC_DECLARE

}  // namespace fastdl
