// softmax and log_softmax along one axis.
#include "../softmax.h"
#include "checks.h"

namespace fastdl::bind {
namespace {

// The array viewed as (outer, dim, inner) around `axis`.
struct Axis {
  int64_t outer, dim, inner;
};

Axis split_axis(const py::array& x, int64_t axis, const char* fn) {
  const int64_t nd = x.ndim();
  if (nd == 0) value_error(std::string(fn) + ": x must have at least 1 dimension");
  if (axis < -nd || axis >= nd)
    throw py::index_error(std::string(fn) + ": axis " + std::to_string(axis) + " is out of range for x of shape " +
                          shape_of(x));
  if (axis < 0) axis += nd;
  Axis a{1, x.shape(axis), 1};
  for (int64_t i = 0; i < axis; ++i) a.outer *= x.shape(i);
  for (int64_t i = axis + 1; i < nd; ++i) a.inner *= x.shape(i);
  return a;
}

py::array forward(const py::object& xo, int64_t axis, bool log, const char* fn) {
  auto x0 = to_array(xo, fn, "x");
  return by_dtype(x0, fn, "x", [&](auto t) {
    using T = typename decltype(t)::type;
    const Axis a = split_axis(x0, axis, fn);
    auto x = carr<T>::ensure(x0);
    py::array y = empty<T>(shape_vec(x0));
    {
      py::gil_scoped_release nogil;
      (log ? log_softmax_forward<T> : softmax_forward<T>)(x.data(), ptr<T>(y), a.outer, a.dim, a.inner);
    }
    return y;
  });
}

py::array backward(const py::object& gyo, const py::object& yo, int64_t axis, bool log, const char* fn) {
  auto gy0 = to_array(gyo, fn, "gy"), y0 = to_array(yo, fn, "y");
  return by_dtype(y0, fn, "y", [&](auto t) {
    using T = typename decltype(t)::type;
    same_dtype(y0, "y", gy0, "gy", fn);
    same_shape(y0, "y", gy0, "gy", fn);
    const Axis a = split_axis(y0, axis, fn);
    auto gy = carr<T>::ensure(gy0), y = carr<T>::ensure(y0);
    py::array gx = empty<T>(shape_vec(y0));
    {
      py::gil_scoped_release nogil;
      (log ? log_softmax_backward<T> : softmax_backward<T>)(gy.data(), y.data(), ptr<T>(gx), a.outer, a.dim, a.inner);
    }
    return gx;
  });
}

}  // namespace

void bind_softmax(py::module_& m) {
  m.def("softmax_forward", [](const py::object& x, const Int& axis) {
    return forward(x, axis.get("softmax_forward", "axis"), false, "softmax_forward"); }, py::arg("x"), py::arg("axis") = -1);
  m.def("softmax_backward", [](const py::object& gy, const py::object& y, const Int& axis) {
    return backward(gy, y, axis.get("softmax_backward", "axis"), false, "softmax_backward"); }, py::arg("gy"), py::arg("y"),
    py::arg("axis") = -1);
  m.def("log_softmax_forward", [](const py::object& x, const Int& axis) {
    return forward(x, axis.get("log_softmax_forward", "axis"), true, "log_softmax_forward"); }, py::arg("x"),
    py::arg("axis") = -1);
  m.def("log_softmax_backward", [](const py::object& gy, const py::object& y, const Int& axis) {
    return backward(gy, y, axis.get("log_softmax_backward", "axis"), true, "log_softmax_backward"); }, py::arg("gy"),
    py::arg("y"), py::arg("axis") = -1);
}

}  // namespace fastdl::bind
