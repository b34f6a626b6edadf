// Activations (relu, tanh, sigmoid, and the parametrised family) and dropout.
#include "../elementwise.h"
#include "checks.h"

#include <cmath>

namespace fastdl::bind {
namespace {

// y = k(x), element by element; k is called with typed pointers (a generic lambda over the kernel)
template <class K>
py::array unary(const py::object& xo, const char* fn, K k) {
  auto x0 = to_array(xo, fn, "x");
  return by_dtype(x0, fn, "x", [&](auto t) {
    using T = typename decltype(t)::type;
    auto x = carr<T>::ensure(x0);
    py::array y = empty<T>(shape_vec(x0));
    {
      py::gil_scoped_release nogil;
      k(x.data(), ptr<T>(y), x.size());
    }
    return y;
  });
}

// gx = k(gy, y): the backward of an activation from its output y (or its input, named `yname`)
template <class K>
py::array binary(const py::object& gyo, const py::object& yo, const char* fn, K k, const char* yname = "y") {
  auto gy0 = to_array(gyo, fn, "gy"), y0 = to_array(yo, fn, yname);
  return by_dtype(y0, fn, yname, [&](auto t) {
    using T = typename decltype(t)::type;
    same_dtype(y0, yname, gy0, "gy", fn);
    same_shape(y0, yname, gy0, "gy", fn);
    auto gy = carr<T>::ensure(gy0), y = carr<T>::ensure(y0);
    py::array gx = empty<T>(shape_vec(y0));
    {
      py::gil_scoped_release nogil;
      k(gy.data(), y.data(), ptr<T>(gx), y.size());
    }
    return gx;
  });
}

const char* const kActs[] = {"leaky_relu", "elu", "selu", "celu", "gelu", "gelu_tanh", "silu", "mish",
                             "softplus", "hardtanh", "hardsigmoid", "hardswish"};

// The activation `kind` by name, with its parameters checked (finite; celu's alpha and softplus's
// beta nonzero; hardtanh's min <= max).
Act act_args(const Str& kind_a, const Float& alpha_a, const Float& beta_a, const char* fn, double& alpha, double& beta) {
  const std::string kind = kind_a.get(fn, "kind");
  alpha = alpha_a.get(fn, "alpha");
  beta = beta_a.get(fn, "beta");
  int k = -1;
  for (int i = 0; i < int(sizeof(kActs) / sizeof(kActs[0])); ++i)
    if (kind == kActs[i]) k = i;
  if (k < 0) value_error(std::string(fn) + ": unknown activation kind '" + kind + "'");
  if (!std::isfinite(alpha) || !std::isfinite(beta))
    value_error(std::string(fn) + ": alpha and beta must be finite, got " + std::to_string(alpha) + " and " +
                std::to_string(beta));
  const Act act = Act(k);
  if ((act == Act::celu || act == Act::softplus) && alpha == 0.0)
    value_error(std::string(fn) + ": alpha must be nonzero for " + kind);
  if (act == Act::hardtanh && alpha > beta)
    value_error(std::string(fn) + ": hardtanh needs alpha (min) <= beta (max), got " + std::to_string(alpha) + " > " +
                std::to_string(beta));
  return act;
}

py::array activation_forward(const py::object& xo, const Str& kind_a, const Float& alpha_a, const Float& beta_a) {
  const char* fn = "activation_forward";
  double alpha, beta;
  const Act act = act_args(kind_a, alpha_a, beta_a, fn, alpha, beta);
  return unary(xo, fn, [&](const auto* a, auto* b, int64_t n) { fastdl::activation_forward(a, b, n, act, alpha, beta); });
}

py::array activation_backward(const py::object& gyo, const py::object& xo, const Str& kind_a, const Float& alpha_a,
                              const Float& beta_a) {
  const char* fn = "activation_backward";
  double alpha, beta;
  const Act act = act_args(kind_a, alpha_a, beta_a, fn, alpha, beta);
  return binary(gyo, xo, fn, [&](const auto* gy, const auto* x, auto* gx, int64_t n) {
    fastdl::activation_backward(gy, x, gx, n, act, alpha, beta);
  }, "x");
}

py::array dropout_mask(const Ints& shape_a, const Float& p_a, const Int& seed_a) {
  const std::vector<int64_t> shape = shape_a.get("dropout_mask", "shape");
  const double p = p_a.get("dropout_mask", "p");
  const int64_t seed = seed_a.get("dropout_mask", "seed");
  if (!(p >= 0.0 && p <= 1.0)) value_error("dropout_mask: p must be in [0, 1], got " + std::to_string(p));
  if (seed < 0) value_error("dropout_mask: seed must be >= 0, got " + std::to_string(seed));
  for (auto s : shape)
    if (s < 0) value_error("dropout_mask: shape has a negative size");
  const std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  want_alloc(dims, 1, "dropout_mask", "the mask");
  py::array m = py::array_t<uint8_t>(dims);
  {
    py::gil_scoped_release nogil;
    fastdl::dropout_mask(ptr<uint8_t>(m), m.size(), p, uint64_t(seed));
  }
  return m;
}

py::array dropout_apply(const py::object& xo, const py::object& mo, const Float& scale_a) {
  const char* fn = "dropout_apply";
  const double scale = scale_a.get(fn, "scale");
  auto x0 = to_array(xo, fn, "x");
  return by_dtype(x0, fn, "x", [&](auto t) {
    using T = typename decltype(t)::type;
    auto m = mask_array(mo, x0, fn);
    if (!std::isfinite(T(scale)))
      value_error(std::string(fn) + ": scale must be finite in the input's dtype, got " + std::to_string(scale));
    auto x = carr<T>::ensure(x0);
    py::array y = empty<T>(shape_vec(x0));
    {
      py::gil_scoped_release nogil;
      fastdl::dropout_apply<T>(x.data(), m.data(), T(scale), ptr<T>(y), x.size());
    }
    return y;
  });
}

}  // namespace

void bind_elementwise(py::module_& m) {
#define FASTDL_ACTIVATION(NAME)                                                                        \
  m.def(#NAME "_forward", [](const py::object& x) {                                                    \
    return unary(x, #NAME "_forward", [](const auto* a, auto* b, int64_t n) { NAME##_forward(a, b, n); }); \
  }, py::arg("x"));                                                                                    \
  m.def(#NAME "_backward", [](const py::object& gy, const py::object& y) {                             \
    return binary(gy, y, #NAME "_backward",                                                            \
                  [](const auto* a, const auto* b, auto* c, int64_t n) { NAME##_backward(a, b, c, n); }); \
  }, py::arg("gy"), py::arg("y"));
  FASTDL_ACTIVATION(relu)
  FASTDL_ACTIVATION(tanh)
  FASTDL_ACTIVATION(sigmoid)
#undef FASTDL_ACTIVATION
  m.def("activation_forward", &activation_forward, py::arg("x"), py::arg("kind"), py::arg("alpha") = 0.0,
        py::arg("beta") = 0.0);
  m.def("activation_backward", &activation_backward, py::arg("gy"), py::arg("x"), py::arg("kind"),
        py::arg("alpha") = 0.0, py::arg("beta") = 0.0);
  m.def("dropout_mask", &dropout_mask, py::arg("shape"), py::arg("p"), py::arg("seed"));
  m.def("dropout_apply", &dropout_apply, py::arg("x"), py::arg("mask"), py::arg("scale"));
}

}  // namespace fastdl::bind
