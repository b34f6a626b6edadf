// The bindings' shared checks: array conversion, dtype dispatch, shape checks and output helpers.
// Every failure is a Python exception that names the function and the argument; nothing here
// touches a kernel.  One binding file per kernel family (csrc/bind/*.cpp) includes this.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace fastdl::bind {

namespace py = pybind11;

// A C-contiguous array of T: converted (once) from anything NumPy can convert.
template <class T>
using carr = py::array_t<T, py::array::c_style | py::array::forcecast>;
using I2 = std::pair<int64_t, int64_t>;
using I4 = std::tuple<int64_t, int64_t, int64_t, int64_t>;

inline std::string shape_of(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i) << (a.ndim() == 1 ? "," : "");
  s << ")";
  return s.str();
}

inline std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

[[noreturn]] inline void type_error(const std::string& m) { throw py::type_error(m); }
[[noreturn]] inline void value_error(const std::string& m) { throw py::value_error(m); }

// The argument as a NumPy array, or TypeError naming it.
inline py::array to_array(const py::handle& obj, const char* fn, const char* name) {
  if (obj.is_none()) type_error(std::string(fn) + ": " + name + " must be an array, got None");
  try {
    return py::array::ensure(obj);
  } catch (...) {
  }
  type_error(std::string(fn) + ": " + name + " must be an array");
}

// The argument converted (once) to a C-contiguous array of T, or TypeError naming it when NumPy
// cannot convert it (strings, objects).  Arguments whose dtype was already checked to be T's can use
// carr<T>::ensure directly.
template <class T>
carr<T> to_carr(const py::handle& obj, const char* fn, const char* name) {
  py::array a = to_array(obj, fn, name);
  auto c = carr<T>::ensure(a);
  if (!c) {
    PyErr_Clear();
    type_error(std::string(fn) + ": " + name + " must be convertible to " + py::str(py::dtype::of<T>()).cast<std::string>() +
               ", got dtype " + dtype_of(a));
  }
  return c;
}

template <class T> struct Tag { using type = T; };

// f(Tag<float>{}) or f(Tag<double>{}) by the dtype of `a` (the argument `name` of `fn`); any other
// dtype is a TypeError naming the argument.  The one place a binding picks its instantiation.
template <class F>
decltype(auto) by_dtype(const py::array& a, const char* fn, const char* name, F&& f) {
  if (a.dtype().is(py::dtype::of<float>())) return f(Tag<float>{});
  if (!a.dtype().is(py::dtype::of<double>()))
    type_error(std::string(fn) + ": " + name + " must be float32 or float64, got " + dtype_of(a));
  return f(Tag<double>{});
}

inline void same_dtype(const py::array& a, const char* an, const py::array& b, const char* bn, const char* fn) {
  if (!a.dtype().is(b.dtype()))
    type_error(std::string(fn) + ": " + bn + " has dtype " + dtype_of(b) + " but " + an + " has " + dtype_of(a));
}

inline void same_shape(const py::array& a, const char* an, const py::array& b, const char* bn, const char* fn) {
  bool ok = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; ok && i < a.ndim(); ++i) ok = a.shape(i) == b.shape(i);
  if (!ok)
    value_error(std::string(fn) + ": " + bn + " has shape " + shape_of(b) + " but " + an + " has shape " + shape_of(a));
}

inline void want_ndim(const py::array& a, const char* name, const char* fn, int lo, int hi) {
  if (a.ndim() < lo || a.ndim() > hi) {
    std::ostringstream s;
    s << fn << ": " << name << " must have " << lo;
    if (hi != lo) s << " to " << hi;
    s << " dimensions, got shape " << shape_of(a);
    value_error(s.str());
  }
}

inline std::vector<py::ssize_t> shape_vec(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// `a` has exactly `shape`, else ValueError naming it.
inline void want_shape(const py::array& a, const std::vector<py::ssize_t>& shape, const char* name, const char* fn) {
  if (shape_vec(a) == shape) return;
  std::ostringstream o;
  o << fn << ": " << name << " has shape " << shape_of(a) << ", expected (";
  for (size_t i = 0; i < shape.size(); ++i) o << (i ? ", " : "") << shape[i] << (shape.size() == 1 ? "," : "");
  o << ")";
  value_error(o.str());
}

// Integer indices as int64 (converted once), or TypeError naming the argument.
inline carr<int64_t> int_array(const py::object& o, const char* fn, const char* name) {
  py::array a = to_array(o, fn, name);
  if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
    type_error(std::string(fn) + ": " + name + " must hold integers, got " + dtype_of(a));
  return carr<int64_t>::ensure(a);
}

template <class T> T* ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <class T> const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }
template <class T> py::array empty(const std::vector<py::ssize_t>& shape) { return py::array_t<T>(shape); }

// An output that is computed only when asked for: an array of `shape`, or nothing (null pointer,
// None to Python).
template <class T> struct Out {
  py::array a;
  bool on;
  Out(bool need, const std::vector<py::ssize_t>& shape) : on(need) {
    if (need) a = empty<T>(shape);
  }
  T* p() { return on ? ptr<T>(a) : nullptr; }
  py::object obj() const { return on ? py::object(a) : py::object(py::none()); }
};

// In-place arguments are never converted (a converted copy would swallow the update): they must
// already be C-contiguous, writeable NumPy arrays of T with n elements.
template <class T>
T* inplace(const py::object& o, const char* fn, const char* name, int64_t n, bool optional = false) {
  if (o.is_none()) {
    if (optional) return nullptr;
    type_error(std::string(fn) + ": " + name + " must be an array, got None");
  }
  if (!py::isinstance<py::array>(o)) type_error(std::string(fn) + ": " + name + " must be a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(o);
  if (!a.dtype().is(py::dtype::of<T>()))
    type_error(std::string(fn) + ": " + name + " has dtype " + dtype_of(a) + ", expected " +
               py::str(py::dtype::of<T>()).cast<std::string>());
  if (!(a.flags() & py::array::c_style)) value_error(std::string(fn) + ": " + name + " must be C-contiguous");
  if (!a.writeable()) value_error(std::string(fn) + ": " + name + " is read-only");
  if (a.size() != n)
    value_error(std::string(fn) + ": " + name + " has " + std::to_string(a.size()) + " elements, the parameter has " +
                std::to_string(n));
  return static_cast<T*>(a.mutable_data());
}

// A boolean or integer mask shaped like `like`, as uint8 (0 = masked out).
inline carr<uint8_t> mask_array(const py::object& mo, const py::array& like, const char* fn) {
  py::array m = to_array(mo, fn, "mask");
  if (m.dtype().kind() != 'b' && m.dtype().kind() != 'u' && m.dtype().kind() != 'i')
    type_error(std::string(fn) + ": mask must be bool or integer, got " + dtype_of(m));
  same_shape(like, "x", m, "mask", fn);
  return carr<uint8_t>::ensure(m.attr("astype")("uint8", py::arg("copy") = false));
}

// Each family registers its functions (csrc/bind/<family>.cpp); module.cpp calls them all.
void bind_gemm(py::module_& m);
void bind_elementwise(py::module_& m);
void bind_softmax(py::module_& m);
void bind_loss(py::module_& m);
void bind_optim(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_norm(py::module_& m);
void bind_embedding(py::module_& m);
void bind_rnn(py::module_& m);
void bind_attention(py::module_& m);

}  // namespace fastdl::bind
