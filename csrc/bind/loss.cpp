// Softmax cross-entropy, BCE with logits (with a mask), MSE.
#include "../loss.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

// Class indices (N,), each in [0, C) or equal to ignore_index.
carr<int64_t> targets(const py::object& to, int64_t N, int64_t C, int64_t ignore_index, const char* fn) {
  py::array t = to_array(to, fn, "target");
  if (t.dtype().kind() != 'i' && t.dtype().kind() != 'u')
    type_error(std::string(fn) + ": target must hold integer class indices, got " + dtype_of(t));
  want_shape(t, {N}, "target", fn);
  auto ti = carr<int64_t>::ensure(t);
  const int64_t* p = ti.data();
  for (int64_t i = 0; i < N; ++i)
    if (p[i] != ignore_index && (p[i] < 0 || p[i] >= C))
      throw py::index_error(std::string(fn) + ": target[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                            " is not a class index in [0, " + std::to_string(C) + ")");
  return ti;
}

void check_smoothing(double eps, const char* fn) {
  if (!(eps >= 0.0 && eps <= 1.0))
    value_error(std::string(fn) + ": label_smoothing must be in [0, 1], got " + std::to_string(eps));
}

py::tuple cross_entropy_forward(const py::object& xo, const py::object& to, const Int& ignore_index_a, const Float& eps_a) {
  const char* fn = "cross_entropy_forward";
  const int64_t ignore_index = ignore_index_a.get(fn, "ignore_index");
  const double eps = eps_a.get(fn, "label_smoothing");
  auto x0 = to_array(xo, fn, "logits");
  return by_dtype(x0, fn, "logits", [&](auto tag) {
    using T = typename decltype(tag)::type;
    want_ndim(x0, "logits", fn, 2, 2);
    check_smoothing(eps, fn);
    auto t = targets(to, x0.shape(0), x0.shape(1), ignore_index, fn);
    auto x = carr<T>::ensure(x0);
    const int64_t N = x.shape(0), C = x.shape(1);
    py::array loss = empty<T>({N}), lse = empty<T>({N});
    {
      py::gil_scoped_release nogil;
      fastdl::cross_entropy_forward<T>(x.data(), t.data(), ptr<T>(loss), ptr<T>(lse), N, C, ignore_index, eps);
    }
    return py::make_tuple(loss, lse);
  });
}

py::array cross_entropy_backward(const py::object& go, const py::object& xo, const py::object& to,
                                 const py::object& lo, const Int& ignore_index_a, const Float& eps_a) {
  const char* fn = "cross_entropy_backward";
  const int64_t ignore_index = ignore_index_a.get(fn, "ignore_index");
  const double eps = eps_a.get(fn, "label_smoothing");
  auto g0 = to_array(go, fn, "gloss"), x0 = to_array(xo, fn, "logits"), l0 = to_array(lo, fn, "lse");
  return by_dtype(x0, fn, "logits", [&](auto tag) {
    using T = typename decltype(tag)::type;
    want_ndim(x0, "logits", fn, 2, 2);
    check_smoothing(eps, fn);
    same_dtype(x0, "logits", g0, "gloss", fn);
    same_dtype(x0, "logits", l0, "lse", fn);
    same_shape(l0, "lse", g0, "gloss", fn);
    want_shape(l0, {x0.shape(0)}, "lse", fn);
    auto t = targets(to, x0.shape(0), x0.shape(1), ignore_index, fn);
    auto g = carr<T>::ensure(g0), x = carr<T>::ensure(x0), lse = carr<T>::ensure(l0);
    const int64_t N = x.shape(0), C = x.shape(1);
    py::array gx = empty<T>({N, C});
    {
      py::gil_scoped_release nogil;
      fastdl::cross_entropy_backward<T>(g.data(), x.data(), t.data(), lse.data(), ptr<T>(gx), N, C, ignore_index, eps);
    }
    return gx;
  });
}

py::array bce_with_logits_forward(const py::object& xo, const py::object& to, const py::object& mo) {
  const char* fn = "bce_with_logits_forward";
  auto x0 = to_array(xo, fn, "logits"), t0 = to_array(to, fn, "target");
  return by_dtype(x0, fn, "logits", [&](auto tag) {
    using T = typename decltype(tag)::type;
    same_dtype(x0, "logits", t0, "target", fn);
    same_shape(x0, "logits", t0, "target", fn);
    carr<uint8_t> mask;
    if (!mo.is_none()) mask = mask_array(mo, x0, fn);
    auto x = carr<T>::ensure(x0), t = carr<T>::ensure(t0);
    py::array loss = empty<T>(shape_vec(x0));
    {
      py::gil_scoped_release nogil;
      fastdl::bce_with_logits_forward<T>(x.data(), t.data(), mo.is_none() ? nullptr : mask.data(), ptr<T>(loss),
                                         x.size());
    }
    return loss;
  });
}

py::array bce_with_logits_backward(const py::object& go, const py::object& xo, const py::object& to,
                                   const py::object& mo) {
  const char* fn = "bce_with_logits_backward";
  auto g0 = to_array(go, fn, "gloss"), x0 = to_array(xo, fn, "logits"), t0 = to_array(to, fn, "target");
  return by_dtype(x0, fn, "logits", [&](auto tag) {
    using T = typename decltype(tag)::type;
    same_dtype(x0, "logits", t0, "target", fn);
    same_dtype(x0, "logits", g0, "gloss", fn);
    same_shape(x0, "logits", t0, "target", fn);
    same_shape(x0, "logits", g0, "gloss", fn);
    carr<uint8_t> mask;
    if (!mo.is_none()) mask = mask_array(mo, x0, fn);
    auto g = carr<T>::ensure(g0), x = carr<T>::ensure(x0), t = carr<T>::ensure(t0);
    py::array gx = empty<T>(shape_vec(x0));
    {
      py::gil_scoped_release nogil;
      fastdl::bce_with_logits_backward<T>(g.data(), x.data(), t.data(), mo.is_none() ? nullptr : mask.data(),
                                          ptr<T>(gx), x.size());
    }
    return gx;
  });
}

// input and target of one dtype and shape, as C-contiguous arrays of T
template <class T>
std::pair<carr<T>, carr<T>> mse_args(const py::array& p0, const py::array& t0, const char* fn) {
  same_dtype(p0, "input", t0, "target", fn);
  same_shape(p0, "input", t0, "target", fn);
  return {carr<T>::ensure(p0), carr<T>::ensure(t0)};
}

double mse_forward(const py::object& po, const py::object& to) {
  const char* fn = "mse_forward";
  auto p0 = to_array(po, fn, "input"), t0 = to_array(to, fn, "target");
  return by_dtype(p0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto [p, t] = mse_args<T>(p0, t0, fn);
    py::gil_scoped_release nogil;
    return fastdl::mse_forward<T>(p.data(), t.data(), p.size());
  });
}

py::array mse_backward(const Float& scale_a, const py::object& po, const py::object& to) {
  const char* fn = "mse_backward";
  const double scale = scale_a.get(fn, "scale");
  auto p0 = to_array(po, fn, "input"), t0 = to_array(to, fn, "target");
  return by_dtype(p0, fn, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto [p, t] = mse_args<T>(p0, t0, fn);
    py::array g = empty<T>(shape_vec(p0));
    {
      py::gil_scoped_release nogil;
      fastdl::mse_backward<T>(T(scale), p.data(), t.data(), ptr<T>(g), p.size());
    }
    return g;
  });
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def("cross_entropy_forward", &cross_entropy_forward, py::arg("logits"), py::arg("target"),
        py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0);
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("gloss"), py::arg("logits"), py::arg("target"),
        py::arg("lse"), py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0);
  m.def("bce_with_logits_forward", &bce_with_logits_forward, py::arg("logits"), py::arg("target"),
        py::arg("mask") = py::none());
  m.def("bce_with_logits_backward", &bce_with_logits_backward, py::arg("gloss"), py::arg("logits"), py::arg("target"),
        py::arg("mask") = py::none());
  m.def("mse_forward", &mse_forward, py::arg("input"), py::arg("target"));
  m.def("mse_backward", &mse_backward, py::arg("scale"), py::arg("input"), py::arg("target"));
}

}  // namespace fastdl::bind
