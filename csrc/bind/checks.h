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

#include <cstdio>
#include <unistd.h>

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
  const char kind = a.dtype().kind();
  if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f')  // objects, strings: never numbers here
    type_error(std::string(fn) + ": " + name + " must be convertible to " + py::str(py::dtype::of<T>()).cast<std::string>() +
               ", got dtype " + dtype_of(a));
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
  if (a.dtype().equal(py::dtype::of<float>())) return f(Tag<float>{});
  if (!a.dtype().equal(py::dtype::of<double>()))
    type_error(std::string(fn) + ": " + name + " must be float32 or float64, got " + dtype_of(a));
  return f(Tag<double>{});
}

inline void same_dtype(const py::array& a, const char* an, const py::array& b, const char* bn, const char* fn) {
  if (!a.dtype().equal(b.dtype()))
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

// a + b and a * b of sizes, or ValueError naming `what` when the result leaves int64 (a size no
// input can make sense of: a dilation of 2**62, ...).
inline int64_t size_add(int64_t a, int64_t b, const char* fn, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) value_error(std::string(fn) + ": " + what + " is too large");
  return r;
}
inline int64_t size_mul(int64_t a, int64_t b, const char* fn, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) value_error(std::string(fn) + ": " + what + " is too large");
  return r;
}

// Bytes of memory available to a new allocation (Linux's MemAvailable, else the physical memory; 0
// when unknown).  The same rule as reference/_checks.py's _available_memory.
inline double available_memory() {
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    double kb = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    std::fclose(f);
    if (kb >= 0) return kb * 1024.0;
  }
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0.0;
#else
  return 0.0;
#endif
}

// An output of `shape` with `item`-byte elements can be allocated: its element count fits int64 and
// its bytes fit in half the available memory (room for its gradient and the temporaries around it);
// else ValueError naming it, before anything is allocated.
inline void want_alloc(const std::vector<py::ssize_t>& shape, size_t item, const char* fn, const char* what) {
  int64_t n = 1;
  for (auto d : shape) n = size_mul(n, d, fn, what);
  const double bytes = double(n) * double(item);
  if (bytes < double(1 << 30)) return;  // small: no need to ask the system (a file read per call)
  const double mem = available_memory();
  if (mem > 0 && bytes > mem / 2) {
    std::ostringstream o;
    o << fn << ": " << what << " would need " << bytes / double(1 << 30) << " GiB, more than half of the "
      << mem / double(1 << 30) << " GiB this machine has available";
    value_error(o.str());
  }
}

// ---------------------------------------------------------------- scalar arguments
// Scalars (ints, numbers, flags, pairs) reach the bindings as Int, Float, Flag, Pair, Quad, Ints: their
// pybind11 casters accept any object, so a wrong one never ends in pybind11's "incompatible function
// arguments" dump; the binding converts each with .get(fn, name), by the rules of the NumPy twin
// (reference/_checks.py, _scalar): TypeError or ValueError naming the argument, the same message.
inline const py::object& np_type(const char* name) {
  static py::object integer = py::module_::import("numpy").attr("integer"),
                    floating = py::module_::import("numpy").attr("floating"),
                    bool_ = py::module_::import("numpy").attr("bool_");
  return name[0] == 'i' ? integer : name[0] == 'f' ? floating : bool_;
}
inline std::string repr_of(const py::handle& o) {
  std::string r = py::repr(o).cast<std::string>();
  return r.size() > 80 ? r.substr(0, 80) + "..." : r;
}
inline bool is_int(const py::handle& o) { return PyLong_Check(o.ptr()) || py::isinstance(o, np_type("integer")); }
inline int64_t int_value(const py::handle& o, const char* fn, const char* name) {
  if (!is_int(o)) type_error(std::string(fn) + ": " + name + " must be an integer, got " + repr_of(o));
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(o.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow) value_error(std::string(fn) + ": " + name + " is too large: " + repr_of(o));
  return v;
}
inline double float_value(const py::handle& o, const char* fn, const char* name) {
  if (!(is_int(o) || PyFloat_Check(o.ptr()) || py::isinstance(o, np_type("floating"))))
    type_error(std::string(fn) + ": " + name + " must be a number, got " + repr_of(o));
  const double v = PyFloat_AsDouble(o.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    value_error(std::string(fn) + ": " + name + " is too large: " + repr_of(o));
  }
  return v;
}
inline bool flag_value(const py::handle& o, const char* fn, const char* name) {
  if (PyBool_Check(o.ptr()) || py::isinstance(o, np_type("bool_"))) return PyObject_IsTrue(o.ptr()) == 1;
  if (is_int(o)) {
    const int64_t v = int_value(o, fn, name);
    if (v == 0 || v == 1) return v == 1;
  }
  type_error(std::string(fn) + ": " + name + " must be a bool, got " + repr_of(o));
}
inline std::vector<int64_t> ints_value(const py::handle& o, size_t n, const char* fn, const char* name) {
  const char* what = n == 2 ? " must be a pair of integers, got " : n == 4 ? " must be four integers, got "
                                                                           : " must be a tuple of integers, got ";
  if (!PyTuple_Check(o.ptr()) && !PyList_Check(o.ptr())) type_error(std::string(fn) + ": " + name + what + repr_of(o));
  py::sequence seq = py::reinterpret_borrow<py::sequence>(o);
  if (n && seq.size() != n) value_error(std::string(fn) + ": " + name + what + repr_of(o));
  std::vector<int64_t> v;
  for (auto item : seq) v.push_back(int_value(item, fn, name));
  return v;
}

struct Int {
  py::object o;
  int64_t get(const char* fn, const char* name) const { return int_value(o, fn, name); }
};
struct Float {
  py::object o;
  double get(const char* fn, const char* name) const { return float_value(o, fn, name); }
};
struct Flag {
  py::object o;
  bool get(const char* fn, const char* name) const { return flag_value(o, fn, name); }
};
struct Pair {
  py::object o;
  I2 get(const char* fn, const char* name) const {
    auto v = ints_value(o, 2, fn, name);
    return {v[0], v[1]};
  }
};
struct Quad {
  py::object o;
  I4 get(const char* fn, const char* name) const {
    auto v = ints_value(o, 4, fn, name);
    return {v[0], v[1], v[2], v[3]};
  }
};
struct Ints {
  py::object o;
  std::vector<int64_t> get(const char* fn, const char* name) const { return ints_value(o, 0, fn, name); }
};
struct Str {
  py::object o;
  std::string get(const char* fn, const char* name) const {
    if (!PyUnicode_Check(o.ptr())) type_error(std::string(fn) + ": " + name + " must be a string, got " + repr_of(o));
    return o.cast<std::string>();
  }
};

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
  if (!a.dtype().equal(py::dtype::of<T>()))
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
void bind_wordvec(py::module_& m);

}  // namespace fastdl::bind

// The casters of the scalar argument types: any object loads (the binding checks it); the names are
// what the stubs show.
namespace pybind11::detail {
#define FASTDL_ANY_CASTER(T, NAME)                                                          \
  template <> struct type_caster<fastdl::bind::T> {                                          \
    PYBIND11_TYPE_CASTER(fastdl::bind::T, const_name(NAME));                                 \
    bool load(handle src, bool) {                                                            \
      value.o = reinterpret_borrow<object>(src);                                             \
      return true;                                                                           \
    }                                                                                        \
    static handle cast(const fastdl::bind::T& v, return_value_policy, handle) {              \
      return v.o.inc_ref();                                                                  \
    }                                                                                        \
  };
FASTDL_ANY_CASTER(Int, "int")
FASTDL_ANY_CASTER(Float, "float")
FASTDL_ANY_CASTER(Flag, "bool")
FASTDL_ANY_CASTER(Pair, "tuple[int, int]")
FASTDL_ANY_CASTER(Quad, "tuple[int, int, int, int]")
FASTDL_ANY_CASTER(Ints, "tuple[int, ...]")
FASTDL_ANY_CASTER(Str, "str")
#undef FASTDL_ANY_CASTER
}  // namespace pybind11::detail
