// Word vectors: word2vec_train, glove_cooccur, glove_train.  The matrices are updated in place, so
// they must already be C-contiguous, writeable float32 arrays; every index array is range-checked
// (over the part a call uses) before the kernel runs.
#include "../wordvec.h"
#include "checks.h"

#include <cmath>

namespace fastdl::bind {
namespace {

// A 2-D float32 matrix updated in place; its shape.
float* matrix(const py::object& o, const char* fn, const char* name, int64_t& V, int64_t& D) {
  if (!py::isinstance<py::array>(o)) type_error(std::string(fn) + ": " + name + " must be a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(o);
  if (a.ndim() != 2) value_error(std::string(fn) + ": " + name + " must be 2-D (words, dims), got shape " + shape_of(a));
  V = a.shape(0), D = a.shape(1);
  return inplace<float>(o, fn, name, V * D);
}
float* same_matrix(const py::object& o, const char* fn, const char* name, int64_t V, int64_t D) {
  int64_t v2 = 0, d2 = 0;
  float* p = matrix(o, fn, name, v2, d2);
  if (v2 != V || d2 != D)
    value_error(std::string(fn) + ": " + name + " has shape (" + std::to_string(v2) + ", " + std::to_string(d2) +
                "), expected (" + std::to_string(V) + ", " + std::to_string(D) + ")");
  return p;
}

// A 1-D array of T of length n (any length when n < 0), converted once when its dtype differs.
template <class T> carr<T> vector_of(const py::object& o, const char* fn, const char* name, int64_t n) {
  py::array a = to_array(o, fn, name);
  const char k = a.dtype().kind();
  const bool want_int = std::is_integral_v<T>;
  if (want_int ? (k != 'i' && k != 'u') : (k != 'f' && k != 'i' && k != 'u' && k != 'b'))
    type_error(std::string(fn) + ": " + name + (want_int ? " must hold integers" : " must hold numbers") + ", got " +
               dtype_of(a));
  if (a.ndim() != 1) value_error(std::string(fn) + ": " + name + " must be 1-D, got shape " + shape_of(a));
  if (n >= 0 && a.shape(0) != n)
    value_error(std::string(fn) + ": " + name + " has length " + std::to_string(a.shape(0)) + ", expected " +
                std::to_string(n));
  if (want_int && !a.dtype().equal(py::dtype::of<T>())) {  // a lossless conversion, or ValueError
    auto wide = carr<int64_t>::ensure(a);
    const int64_t* p = wide.data();
    for (int64_t i = 0; i < wide.size(); ++i)
      if (p[i] < int64_t(std::numeric_limits<T>::min()) || p[i] > int64_t(std::numeric_limits<T>::max()))
        value_error(std::string(fn) + ": " + name + "[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                    " does not fit " + py::str(py::dtype::of<T>()).cast<std::string>());
    return carr<T>::ensure(wide);
  }
  return carr<T>::ensure(a);
}

template <class T> void want_range(const T* p, int64_t b, int64_t e, int64_t V, const char* fn, const char* name) {
  for (int64_t i = b; i < e; ++i)
    if (p[i] < 0 || int64_t(p[i]) >= V)
      throw py::index_error(std::string(fn) + ": " + name + "[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                            " is outside the vocabulary of " + std::to_string(V) + " words");
}

void want_finite_nonneg(double v, const char* fn, const char* name) {
  if (!std::isfinite(v) || v < 0) value_error(std::string(fn) + ": " + name + " must be finite and >= 0, got " + std::to_string(v));
}

py::tuple word2vec_train(const py::object& syn0_o, const py::object& syn1_o, const py::object& ids_o,
                         const py::object& offsets_o, const py::object& jobs_o, const Int& job_begin_a,
                         const Int& job_end_a, const py::object& keep_o, const py::object& aprob_o,
                         const py::object& aidx_o, const Flag& sg_a, const Int& window_a, const Int& negative_a,
                         const Flag& cbow_mean_a, const Float& alpha_a, const Float& min_alpha_a,
                         const Float& progress_base_a, const Float& progress_total_a, const Int& seed_a,
                         const Int& epoch_a, const Int& workers_a, const Flag& compute_loss_a) {
  const char* fn = "word2vec_train";
  W2VConfig cfg;
  float* syn0 = matrix(syn0_o, fn, "syn0", cfg.V, cfg.D);
  if (cfg.V < 1 || cfg.D < 1) value_error(std::string(fn) + ": syn0 must have at least one word and one dimension");
  if (cfg.V > std::numeric_limits<int32_t>::max()) value_error(std::string(fn) + ": syn0 has more words than int32 indices reach");
  float* syn1 = same_matrix(syn1_o, fn, "syn1neg", cfg.V, cfg.D);
  if (syn0 == syn1) value_error(std::string(fn) + ": syn0 and syn1neg must be different arrays");
  cfg.sg = sg_a.get(fn, "sg");
  cfg.cbow_mean = cbow_mean_a.get(fn, "cbow_mean");
  cfg.compute_loss = compute_loss_a.get(fn, "compute_loss");
  cfg.window = window_a.get(fn, "window");
  cfg.negative = negative_a.get(fn, "negative");
  if (cfg.window < 1) value_error(std::string(fn) + ": window must be >= 1, got " + std::to_string(cfg.window));
  if (cfg.negative < 0 || cfg.negative > 64)
    value_error(std::string(fn) + ": negative must be in [0, 64], got " + std::to_string(cfg.negative));
  cfg.alpha0 = alpha_a.get(fn, "alpha");
  cfg.alpha_min = min_alpha_a.get(fn, "min_alpha");
  cfg.progress_base = progress_base_a.get(fn, "progress_base");
  cfg.progress_total = progress_total_a.get(fn, "progress_total");
  want_finite_nonneg(cfg.alpha0, fn, "alpha");
  want_finite_nonneg(cfg.alpha_min, fn, "min_alpha");
  want_finite_nonneg(cfg.progress_base, fn, "progress_base");
  if (!std::isfinite(cfg.progress_total) || cfg.progress_total <= 0)
    value_error(std::string(fn) + ": progress_total must be finite and > 0");
  const int64_t seed = seed_a.get(fn, "seed"), epoch = epoch_a.get(fn, "epoch"), workers = workers_a.get(fn, "workers");
  if (seed < 0) value_error(std::string(fn) + ": seed must be >= 0");
  if (epoch < 0) value_error(std::string(fn) + ": epoch must be >= 0");
  if (workers < 1) value_error(std::string(fn) + ": workers must be >= 1, got " + std::to_string(workers));
  cfg.seed = uint64_t(seed), cfg.epoch = uint64_t(epoch);

  auto ids = vector_of<int32_t>(ids_o, fn, "ids", -1);
  auto offsets = vector_of<int64_t>(offsets_o, fn, "offsets", -1);
  auto jobs = vector_of<int64_t>(jobs_o, fn, "job_starts", -1);
  const int64_t N = ids.size(), S = offsets.size() - 1, J = jobs.size() - 1;
  if (S < 0 || offsets.data()[0] != 0 || offsets.data()[S] != N)
    value_error(std::string(fn) + ": offsets must start at 0 and end at len(ids) = " + std::to_string(N));
  if (J < 0) value_error(std::string(fn) + ": job_starts must have at least one entry");
  const int64_t jb = job_begin_a.get(fn, "job_begin"), je = job_end_a.get(fn, "job_end");
  if (jb < 0 || jb > je || je > J)
    value_error(std::string(fn) + ": need 0 <= job_begin <= job_end <= " + std::to_string(J) + ", got " +
                std::to_string(jb) + " and " + std::to_string(je));
  const int64_t* js = jobs.data();
  for (int64_t j = jb; j <= je; ++j)
    if (js[j] < 0 || js[j] > S || (j > jb && js[j] < js[j - 1]))
      value_error(std::string(fn) + ": job_starts must be non-decreasing sentence indices in [0, " + std::to_string(S) +
                  "], bad at " + std::to_string(j));
  const int64_t* off = offsets.data();
  for (int64_t s = js[jb]; s < js[je]; ++s)
    if (off[s + 1] < off[s]) value_error(std::string(fn) + ": offsets must be non-decreasing, bad at " + std::to_string(s + 1));
  want_range(ids.data(), off[js[jb]], off[js[je]], cfg.V, fn, "ids");

  carr<float> keep;
  if (!keep_o.is_none()) {
    keep = vector_of<float>(keep_o, fn, "keep", cfg.V);
    for (int64_t w = 0; w < cfg.V; ++w)
      if (!(keep.data()[w] >= 0)) value_error(std::string(fn) + ": keep[" + std::to_string(w) + "] must be >= 0 (not NaN)");
  }
  auto aprob = vector_of<float>(aprob_o, fn, "alias_prob", cfg.V);
  auto aidx = vector_of<int32_t>(aidx_o, fn, "alias_idx", cfg.V);
  for (int64_t w = 0; w < cfg.V; ++w)
    if (!(aprob.data()[w] >= 0 && aprob.data()[w] <= 1))
      value_error(std::string(fn) + ": alias_prob[" + std::to_string(w) + "] must be in [0, 1]");
  want_range(aidx.data(), 0, cfg.V, cfg.V, fn, "alias_idx");

  W2VCorpus c{ids.data(), off, js, keep_o.is_none() ? nullptr : keep.data(), aprob.data(), aidx.data()};
  W2VStats st;
  {
    py::gil_scoped_release nogil;
    st = fastdl::word2vec_train(syn0, syn1, c, cfg, jb, je, workers);
  }
  return py::make_tuple(st.loss, st.examples, st.words);
}

py::tuple glove_cooccur(const py::object& ids_o, const py::object& offsets_o, const Int& num_words_a,
                        const Int& window_a, const Flag& symmetric_a, const Int& dense_entries_a,
                        const Int& buffer_entries_a) {
  const char* fn = "glove_cooccur";
  const int64_t V = num_words_a.get(fn, "num_words"), window = window_a.get(fn, "window");
  const bool symmetric = symmetric_a.get(fn, "symmetric");
  const int64_t dense = dense_entries_a.get(fn, "dense_entries"), buffer = buffer_entries_a.get(fn, "buffer_entries");
  if (V < 1 || V > std::numeric_limits<int32_t>::max())
    value_error(std::string(fn) + ": num_words must be in [1, 2^31 - 1], got " + std::to_string(V));
  if (window < 1) value_error(std::string(fn) + ": window must be >= 1, got " + std::to_string(window));
  if (dense < 0) value_error(std::string(fn) + ": dense_entries must be >= 0");
  if (buffer < 1) value_error(std::string(fn) + ": buffer_entries must be >= 1");
  want_alloc({std::min(dense, size_mul(V, V, fn, "the dense table"))}, 8, fn, "the dense table");
  want_alloc({buffer}, sizeof(Cooc), fn, "the buffer");
  auto ids = vector_of<int32_t>(ids_o, fn, "ids", -1);
  auto offsets = vector_of<int64_t>(offsets_o, fn, "offsets", -1);
  const int64_t N = ids.size(), S = offsets.size() - 1;
  if (S < 0 || offsets.data()[0] != 0 || offsets.data()[S] != N)
    value_error(std::string(fn) + ": offsets must start at 0 and end at len(ids) = " + std::to_string(N));
  for (int64_t s = 0; s < S; ++s)
    if (offsets.data()[s + 1] < offsets.data()[s])
      value_error(std::string(fn) + ": offsets must be non-decreasing, bad at " + std::to_string(s + 1));
  want_range(ids.data(), 0, N, V, fn, "ids");
  std::vector<Cooc> out;
  {
    py::gil_scoped_release nogil;
    out = fastdl::glove_cooccur(ids.data(), offsets.data(), S, V, window, symmetric, dense, buffer);
  }
  const py::ssize_t n = py::ssize_t(out.size());
  py::array_t<int32_t> rows(n), cols(n);
  py::array_t<float> vals(n);
  int32_t* r = rows.mutable_data();
  int32_t* c = cols.mutable_data();
  float* x = vals.mutable_data();
  for (py::ssize_t k = 0; k < n; ++k) r[k] = out[size_t(k)].i, c[k] = out[size_t(k)].j, x[k] = out[size_t(k)].x;
  return py::make_tuple(rows, cols, vals);
}

py::tuple glove_train(const py::object& W_o, const py::object& Wc_o, const py::object& b_o, const py::object& bc_o,
                      const py::object& gW_o, const py::object& gWc_o, const py::object& gb_o,
                      const py::object& gbc_o, const py::object& rows_o, const py::object& cols_o,
                      const py::object& logx_o, const py::object& fx_o, const Float& eta_a, const Int& workers_a) {
  const char* fn = "glove_train";
  int64_t V = 0, D = 0;
  float* W = matrix(W_o, fn, "W", V, D);
  if (V < 1 || D < 1) value_error(std::string(fn) + ": W must have at least one word and one dimension");
  float* Wc = same_matrix(Wc_o, fn, "W_context", V, D);
  float* gW = same_matrix(gW_o, fn, "gradsq_W", V, D);
  float* gWc = same_matrix(gWc_o, fn, "gradsq_W_context", V, D);
  float* b = inplace<float>(b_o, fn, "b", V);
  float* bc = inplace<float>(bc_o, fn, "b_context", V);
  float* gb = inplace<float>(gb_o, fn, "gradsq_b", V);
  float* gbc = inplace<float>(gbc_o, fn, "gradsq_b_context", V);
  {
    const void* ps[] = {W, Wc, gW, gWc, b, bc, gb, gbc};
    for (int p = 0; p < 8; ++p)
      for (int q = 0; q < p; ++q)
        if (ps[p] == ps[q]) value_error(std::string(fn) + ": the parameter and gradient arrays must all be different arrays");
  }
  const double eta = eta_a.get(fn, "eta");
  const int64_t workers = workers_a.get(fn, "workers");
  if (!std::isfinite(eta) || eta <= 0) value_error(std::string(fn) + ": eta must be finite and > 0");
  if (workers < 1) value_error(std::string(fn) + ": workers must be >= 1, got " + std::to_string(workers));
  auto rows = vector_of<int32_t>(rows_o, fn, "rows", -1);
  const int64_t N = rows.size();
  auto cols = vector_of<int32_t>(cols_o, fn, "cols", N);
  auto logx = vector_of<float>(logx_o, fn, "logx", N);
  auto fx = vector_of<float>(fx_o, fn, "fx", N);
  want_range(rows.data(), 0, N, V, fn, "rows");
  want_range(cols.data(), 0, N, V, fn, "cols");
  int64_t bad = 0;
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = fastdl::glove_train(W, Wc, b, bc, gW, gWc, gb, gbc, rows.data(), cols.data(), logx.data(), fx.data(), N, D,
                               eta, workers, &bad);
  }
  return py::make_tuple(loss, bad);
}

}  // namespace

void bind_wordvec(py::module_& m) {
  m.def("word2vec_train", &word2vec_train, py::arg("syn0"), py::arg("syn1neg"), py::arg("ids"), py::arg("offsets"),
        py::arg("job_starts"), py::arg("job_begin"), py::arg("job_end"), py::arg("keep"), py::arg("alias_prob"),
        py::arg("alias_idx"), py::arg("sg") = true, py::arg("window") = 5, py::arg("negative") = 5,
        py::arg("cbow_mean") = true, py::arg("alpha") = 0.025, py::arg("min_alpha") = 1e-4,
        py::arg("progress_base") = 0.0, py::arg("progress_total") = 1.0, py::arg("seed") = 0, py::arg("epoch") = 0,
        py::arg("workers") = 1, py::arg("compute_loss") = true);
  m.def("glove_cooccur", &glove_cooccur, py::arg("ids"), py::arg("offsets"), py::arg("num_words"), py::arg("window"),
        py::arg("symmetric") = true, py::arg("dense_entries") = 1 << 24, py::arg("buffer_entries") = 1 << 22);
  m.def("glove_train", &glove_train, py::arg("W"), py::arg("W_context"), py::arg("b"), py::arg("b_context"),
        py::arg("gradsq_W"), py::arg("gradsq_W_context"), py::arg("gradsq_b"), py::arg("gradsq_b_context"),
        py::arg("rows"), py::arg("cols"), py::arg("logx"), py::arg("fx"), py::arg("eta") = 0.05,
        py::arg("workers") = 1);
}

}  // namespace fastdl::bind
