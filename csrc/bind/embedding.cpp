// Embedding lookup and its scatter-add backward.
#include "../embedding.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

// Indices as int64, every one in [0, V), or IndexError naming the bad one.
carr<int64_t> emb_indices(const py::object& io, int64_t V, const char* fn) {
  auto ix = int_array(io, fn, "indices");
  const int64_t* p = ix.data();
  for (int64_t n = 0; n < ix.size(); ++n)
    if (p[n] < 0 || p[n] >= V)
      throw py::index_error(std::string(fn) + ": index " + std::to_string(p[n]) + " is out of range for " +
                            std::to_string(V) + " embeddings");
  return ix;
}

py::array embedding_forward(const py::object& wo, const py::object& io) {
  const char* fn = "embedding_forward";
  auto w0 = to_array(wo, fn, "weight");
  return by_dtype(w0, fn, "weight", [&](auto tag) {
    using T = typename decltype(tag)::type;
    want_ndim(w0, "weight", fn, 2, 2);
    auto ix = emb_indices(io, w0.shape(0), fn);
    auto w = carr<T>::ensure(w0);
    const int64_t D = w.shape(1);
    auto shp = shape_vec(ix);
    shp.push_back(D);
    py::array y = empty<T>(shp);
    {
      py::gil_scoped_release nogil;
      fastdl::embedding_forward<T>(w.data(), ix.data(), ptr<T>(y), ix.size(), D);
    }
    return y;
  });
}

py::array embedding_backward(const py::object& go, const py::object& io, const Int& num_embeddings_a, const Int& padding_idx_a) {
  const char* fn = "embedding_backward";
  const int64_t num_embeddings = num_embeddings_a.get(fn, "num_embeddings");
  const int64_t padding_idx = padding_idx_a.get(fn, "padding_idx");
  auto g0 = to_array(go, fn, "gy");
  return by_dtype(g0, fn, "gy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (num_embeddings < 1) value_error(std::string(fn) + ": num_embeddings must be >= 1");
    if (g0.ndim() < 1) value_error(std::string(fn) + ": gy must have at least 1 dimension");
    auto ix = emb_indices(io, num_embeddings, fn);
    auto g = carr<T>::ensure(g0);
    const int64_t D = g.shape(g.ndim() - 1);
    if (g.size() != ix.size() * D)
      value_error(std::string(fn) + ": gy has shape " + shape_of(g) + ", expected the indices' shape + (D,)");
    want_alloc({num_embeddings, D}, 8, fn, "the weight gradient");
    py::array gw = empty<T>({num_embeddings, D});
    {
      py::gil_scoped_release nogil;
      fastdl::embedding_backward<T>(g.data(), ix.data(), ptr<T>(gw), ix.size(), num_embeddings, D, padding_idx);
    }
    return gw;
  });
}

}  // namespace

void bind_embedding(py::module_& m) {
  m.def("embedding_forward", &embedding_forward, py::arg("weight"), py::arg("indices"));
  m.def("embedding_backward", &embedding_backward, py::arg("gy"), py::arg("indices"), py::arg("num_embeddings"),
        py::arg("padding_idx") = -1);
}

}  // namespace fastdl::bind
