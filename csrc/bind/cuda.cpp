// fastdl._C_cuda: the CUDA kernels (csrc/cuda/) on raw device pointers.  The Python layer
// (fastdl/cuda/ops.py) passes CuPy arrays' pointers, sizes and the current stream; here every
// argument that could crash a kernel is checked first (dtype code, sizes, null pointers), so a direct
// call with bad values raises ValueError naming the argument instead of faulting the GPU.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../cuda/kernels.h"

namespace py = pybind11;
namespace fc = fastdl::cuda;

namespace {

using Ptr = std::uintptr_t;

void check_dtype(int dtype, const char* fn) {
  if (dtype != 0 && dtype != 1) {
    throw py::value_error(std::string(fn) + ": dtype must be 0 (float32) or 1 (float64), got " + std::to_string(dtype));
  }
}

void check_size(int64_t v, const char* fn, const char* name) {
  if (v < 0) throw py::value_error(std::string(fn) + ": " + name + " must be >= 0, got " + std::to_string(v));
  if (v > (int64_t{1} << 48)) throw py::value_error(std::string(fn) + ": " + name + " is too large");
}

void check_mul(int64_t a, int64_t b, const char* fn) {  // a * b elements must stay within the size limit
  if (a > 0 && b > (int64_t{1} << 48) / a) throw py::value_error(std::string(fn) + ": the array is too large");
}

void check_ptr(Ptr p, int64_t n, const char* fn, const char* name) {
  if (n > 0 && p == 0) throw py::value_error(std::string(fn) + ": " + name + " is a null pointer");
}

void check_rows(int64_t rows, const char* fn) {
  if (rows > 0x7fffffffLL) throw py::value_error(std::string(fn) + ": too many rows for one launch");
}

void raise_if(const std::string& err, const char* fn) {
  if (!err.empty()) throw std::runtime_error(std::string(fn) + ": CUDA error " + err);
}

template <class T>
T* P(Ptr p) {
  return reinterpret_cast<T*>(p);
}

void* S(Ptr s) { return reinterpret_cast<void*>(s); }

// the shared checks of the attention kernels: sizes, head sizes, the grid, the mask's layout, dropout
void check_attention(int dtype, int64_t B, int64_t L, int64_t S, int64_t E, int64_t Ev, Ptr mask, int64_t mb,
                     int64_t ml, int64_t div, double dropout_p, const char* fn) {
  check_dtype(dtype, fn), check_size(B, fn, "B"), check_size(L, fn, "L"), check_size(S, fn, "S");
  check_size(E, fn, "E"), check_size(Ev, fn, "Ev"), check_mul(B, L, fn), check_mul(B, S, fn);
  check_mul(B * L, E > Ev ? E : Ev, fn), check_mul(B * S, E, fn);
  check_mul(B * S, Ev, fn);
  if (E > fc::attention_max_features() || Ev > fc::attention_max_features())
    throw py::value_error(std::string(fn) + ": E and Ev must be at most " + std::to_string(fc::attention_max_features()));
  if (B > 65535) throw py::value_error(std::string(fn) + ": B (batch x heads) must be at most 65535");
  check_rows(L, fn), check_rows(S, fn);
  if (mask != 0 && (mb < 1 || div < 1 || (ml != 1 && ml != L)))
    throw py::value_error(std::string(fn) + ": mask layout needs mb >= 1, div >= 1 and ml 1 or L");
  if (!(dropout_p >= 0 && dropout_p < 1)) throw py::value_error(std::string(fn) + ": dropout_p must be in [0, 1)");
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "fastdl's CUDA kernels on device pointers (used by fastdl.cuda; see csrc/cuda/kernels.h)";
  m.attr("architectures") = fc::architectures();

  m.def("act_forward", [](int act, int dtype, Ptr x, Ptr y, int64_t n, Ptr stream) {
    const char* fn = "act_forward";
    if (act < 0 || act > 2) throw py::value_error("act_forward: act must be 0 (relu), 1 (tanh) or 2 (sigmoid)");
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_ptr(x, n, fn, "x"), check_ptr(y, n, fn, "y");
    raise_if(fc::act_forward(act, dtype, P<void>(x), P<void>(y), n, S(stream)), fn);
  });
  m.def("act_backward", [](int act, int dtype, Ptr gy, Ptr y, Ptr gx, int64_t n, Ptr stream) {
    const char* fn = "act_backward";
    if (act < 0 || act > 2) throw py::value_error("act_backward: act must be 0 (relu), 1 (tanh) or 2 (sigmoid)");
    check_dtype(dtype, fn), check_size(n, fn, "n");
    check_ptr(gy, n, fn, "gy"), check_ptr(y, n, fn, "y"), check_ptr(gx, n, fn, "gx");
    raise_if(fc::act_backward(act, dtype, P<void>(gy), P<void>(y), P<void>(gx), n, S(stream)), fn);
  });
  m.def("softmax_forward", [](int log, int dtype, Ptr x, Ptr y, int64_t rows, int64_t cols, Ptr stream) {
    const char* fn = "softmax_forward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(cols, fn, "cols"), check_rows(rows, fn),
        check_mul(rows, cols, fn);
    check_ptr(x, rows * cols, fn, "x"), check_ptr(y, rows * cols, fn, "y");
    raise_if(fc::softmax_forward(log != 0, dtype, P<void>(x), P<void>(y), rows, cols, S(stream)), fn);
  });
  m.def("softmax_backward", [](int log, int dtype, Ptr gy, Ptr y, Ptr gx, int64_t rows, int64_t cols, Ptr stream) {
    const char* fn = "softmax_backward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(cols, fn, "cols"), check_rows(rows, fn),
        check_mul(rows, cols, fn);
    check_ptr(gy, rows * cols, fn, "gy"), check_ptr(y, rows * cols, fn, "y"), check_ptr(gx, rows * cols, fn, "gx");
    raise_if(fc::softmax_backward(log != 0, dtype, P<void>(gy), P<void>(y), P<void>(gx), rows, cols, S(stream)), fn);
  });
  m.def("dropout_mask", [](Ptr out, int64_t n, double p, std::uint64_t seed, Ptr stream) {
    const char* fn = "dropout_mask";
    check_size(n, fn, "n"), check_ptr(out, n, fn, "out");
    if (!(p >= 0 && p <= 1)) throw py::value_error("dropout_mask: p must be in [0, 1]");
    raise_if(fc::dropout_mask(P<void>(out), n, p, seed, S(stream)), fn);
  });
  m.def("dropout_apply", [](int dtype, Ptr x, Ptr mask, Ptr y, int64_t n, double scale, Ptr stream) {
    const char* fn = "dropout_apply";
    check_dtype(dtype, fn), check_size(n, fn, "n");
    check_ptr(x, n, fn, "x"), check_ptr(mask, n, fn, "mask"), check_ptr(y, n, fn, "y");
    if (!std::isfinite(scale)) throw py::value_error("dropout_apply: scale must be finite");
    raise_if(fc::dropout_apply(dtype, P<void>(x), P<void>(mask), P<void>(y), n, scale, S(stream)), fn);
  });
  m.def("activation_forward", [](int kind, int dtype, Ptr x, Ptr y, int64_t n, double alpha, double beta, Ptr stream) {
    const char* fn = "activation_forward";
    if (kind < 0 || kind > 11) throw py::value_error("activation_forward: kind must be 0 to 11");
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_ptr(x, n, fn, "x"), check_ptr(y, n, fn, "y");
    raise_if(fc::activation_forward(kind, dtype, P<void>(x), P<void>(y), n, alpha, beta, S(stream)), fn);
  });
  m.def("activation_backward", [](int kind, int dtype, Ptr gy, Ptr x, Ptr gx, int64_t n, double alpha, double beta,
                                  Ptr stream) {
    const char* fn = "activation_backward";
    if (kind < 0 || kind > 11) throw py::value_error("activation_backward: kind must be 0 to 11");
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_ptr(gy, n, fn, "gy"), check_ptr(x, n, fn, "x");
    check_ptr(gx, n, fn, "gx");
    raise_if(fc::activation_backward(kind, dtype, P<void>(gy), P<void>(x), P<void>(gx), n, alpha, beta, S(stream)), fn);
  });
  m.def("masked_softmax_forward", [](int dtype, Ptr x, Ptr mask, Ptr y, int64_t rows, int64_t cols, double scale,
                                     Ptr stream) {
    const char* fn = "masked_softmax_forward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(cols, fn, "cols"), check_rows(rows, fn),
        check_mul(rows, cols, fn);
    if (!std::isfinite(scale)) throw py::value_error("masked_softmax_forward: scale must be finite");
    check_ptr(x, rows * cols, fn, "x"), check_ptr(y, rows * cols, fn, "y");
    raise_if(fc::masked_softmax_forward(dtype, P<void>(x), P<void>(mask), P<void>(y), rows, cols, scale, S(stream)), fn);
  });
  m.def("masked_softmax_backward", [](int dtype, Ptr gy, Ptr y, Ptr gx, int64_t rows, int64_t cols, double scale,
                                      Ptr stream) {
    const char* fn = "masked_softmax_backward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(cols, fn, "cols"), check_rows(rows, fn),
        check_mul(rows, cols, fn);
    if (!std::isfinite(scale)) throw py::value_error("masked_softmax_backward: scale must be finite");
    check_ptr(gy, rows * cols, fn, "gy"), check_ptr(y, rows * cols, fn, "y"), check_ptr(gx, rows * cols, fn, "gx");
    raise_if(fc::masked_softmax_backward(dtype, P<void>(gy), P<void>(y), P<void>(gx), rows, cols, scale, S(stream)),
             fn);
  });
  m.def("cross_entropy_forward", [](int dtype, Ptr x, Ptr t, Ptr loss, Ptr lse, int64_t rows, int64_t cols,
                                    int64_t ignore_index, double eps, Ptr stream) {
    const char* fn = "cross_entropy_forward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(cols, fn, "cols"), check_rows(rows, fn),
        check_mul(rows, cols, fn);
    if (rows > 0 && cols == 0) throw py::value_error("cross_entropy_forward: cols must be >= 1");
    if (!(eps >= 0.0 && eps <= 1.0)) throw py::value_error("cross_entropy_forward: label_smoothing must be in [0, 1]");
    check_ptr(x, rows * cols, fn, "x"), check_ptr(t, rows, fn, "target");
    check_ptr(loss, rows, fn, "loss"), check_ptr(lse, rows, fn, "lse");
    raise_if(fc::cross_entropy_forward(dtype, P<void>(x), P<int64_t>(t), P<void>(loss), P<void>(lse), rows, cols,
                                       ignore_index, eps, S(stream)), fn);
  });
  m.def("cross_entropy_backward", [](int dtype, Ptr gloss, Ptr x, Ptr t, Ptr lse, Ptr gx, int64_t rows,
                                     int64_t cols, int64_t ignore_index, double eps, Ptr stream) {
    const char* fn = "cross_entropy_backward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(cols, fn, "cols"), check_rows(rows, fn),
        check_mul(rows, cols, fn);
    if (!(eps >= 0.0 && eps <= 1.0)) throw py::value_error("cross_entropy_backward: label_smoothing must be in [0, 1]");
    check_ptr(gloss, rows, fn, "gloss"), check_ptr(x, rows * cols, fn, "x"), check_ptr(t, rows, fn, "target");
    check_ptr(lse, rows, fn, "lse"), check_ptr(gx, rows * cols, fn, "gx");
    raise_if(fc::cross_entropy_backward(dtype, P<void>(gloss), P<void>(x), P<int64_t>(t), P<void>(lse), P<void>(gx),
                                        rows, cols, ignore_index, eps, S(stream)), fn);
  });
  m.def("sgd_step", [](int dtype, Ptr p, Ptr g, Ptr buf, int64_t n, double lr, double momentum, double dampening,
                       double weight_decay, bool nesterov, bool maximize, bool first_step, Ptr stream) {
    const char* fn = "sgd_step";
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_ptr(p, n, fn, "param"), check_ptr(g, n, fn, "grad");
    raise_if(fc::sgd_step(dtype, P<void>(p), P<void>(g), P<void>(buf), n, lr, momentum, dampening, weight_decay,
                          nesterov, maximize, first_step, S(stream)), fn);
  });
  m.def("adam_step", [](int dtype, Ptr p, Ptr g, Ptr mm, Ptr v, Ptr vmax, int64_t n, double lr, double beta1,
                        double beta2, double eps, double weight_decay, bool decoupled, bool maximize, int64_t step,
                        Ptr stream) {
    const char* fn = "adam_step";
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_ptr(p, n, fn, "param"), check_ptr(g, n, fn, "grad");
    check_ptr(mm, n, fn, "exp_avg"), check_ptr(v, n, fn, "exp_avg_sq");
    if (step < 1) throw py::value_error("adam_step: step must be >= 1, got " + std::to_string(step));
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw py::value_error("adam_step: betas must be in [0, 1)");
    raise_if(fc::adam_step(dtype, P<void>(p), P<void>(g), P<void>(mm), P<void>(v), P<void>(vmax), n, lr, beta1, beta2,
                           eps, weight_decay, decoupled, maximize, step, S(stream)), fn);
  });
  m.def("rmsprop_step", [](int dtype, Ptr p, Ptr g, Ptr sq, Ptr gavg, Ptr buf, int64_t n, double lr, double alpha,
                           double eps, double weight_decay, double momentum, bool maximize, Ptr stream) {
    const char* fn = "rmsprop_step";
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_ptr(p, n, fn, "param"), check_ptr(g, n, fn, "grad");
    check_ptr(sq, n, fn, "square_avg");
    if (!(alpha >= 0 && alpha <= 1)) throw py::value_error("rmsprop_step: alpha must be in [0, 1]");
    raise_if(fc::rmsprop_step(dtype, P<void>(p), P<void>(g), P<void>(sq), P<void>(gavg), P<void>(buf), n, lr, alpha,
                              eps, weight_decay, momentum, maximize, S(stream)), fn);
  });
  m.def("adaptive_step", [](int kind, int dtype, Ptr p, Ptr g, Ptr a, Ptr b, int64_t n, double lr, double beta1,
                            double beta2, double eps, double weight_decay, bool decoupled, bool maximize, int64_t step,
                            double extra, double extra2, Ptr stream) {
    const char* fn = "adaptive_step";
    if (kind < 0 || kind > 4) throw py::value_error("adaptive_step: kind must be 0 to 4 (adagrad .. radam)");
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_ptr(p, n, fn, "param"), check_ptr(g, n, fn, "grad");
    check_ptr(a, n, fn, "state_a");
    if (kind != 0) check_ptr(b, n, fn, "state_b");
    if (step < 1) throw py::value_error("adaptive_step: step must be >= 1, got " + std::to_string(step));
    if (!(beta1 >= 0 && beta1 <= 1 && beta2 >= 0 && beta2 < 1))
      throw py::value_error("adaptive_step: beta1 must be in [0, 1] and beta2 in [0, 1)");
    if (kind == 3 && !(extra2 < 1)) throw py::value_error("adaptive_step: nadam's momentum product (extra2) must be < 1");
    raise_if(fc::adaptive_step(kind, dtype, P<void>(p), P<void>(g), P<void>(a), P<void>(b), n, lr, beta1, beta2, eps,
                               weight_decay, decoupled, maximize, step, extra, extra2, S(stream)), fn);
  });
  m.def("embedding_forward", [](int dtype, Ptr w, Ptr idx, Ptr y, int64_t n, int64_t d, Ptr stream) {
    const char* fn = "embedding_forward";
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_size(d, fn, "d"), check_mul(n, d, fn);
    check_ptr(idx, n, fn, "indices"), check_ptr(y, n * d, fn, "y"), check_ptr(w, n * d, fn, "weight");
    raise_if(fc::embedding_forward(dtype, P<void>(w), P<int64_t>(idx), P<void>(y), n, d, S(stream)), fn);
  });
  // geometry tuples, each entry checked: (N, C, H, W, kh, kw, OH, OW, sh, sw, pt, pl, dh, dw) for the
  // convolution, (P, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw) for pooling
  auto conv_geom = [](const py::tuple& t, const char* fn) {
    if (py::len(t) != 14) throw py::value_error(std::string(fn) + ": geometry must have 14 entries");
    int64_t v[14];
    const char* names[14] = {"N", "C", "H", "W", "kh", "kw", "OH", "OW", "sh", "sw", "pt", "pl", "dh", "dw"};
    for (int i = 0; i < 14; ++i) {
      v[i] = t[i].cast<int64_t>();
      check_size(v[i], fn, names[i]);
      if ((i >= 4 && i <= 5) || i >= 8) {
        if (i != 10 && i != 11 && v[i] < 1) throw py::value_error(std::string(fn) + ": " + names[i] + " must be >= 1");
      }
    }
    const fc::ConvGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13]};
    check_mul(g.N * g.C, g.H * g.W, fn), check_mul(g.C * g.kh * g.kw, g.N * g.OH * g.OW, fn);
    return g;
  };
  auto pool_geom = [](const py::tuple& t, const char* fn) {
    if (py::len(t) != 13) throw py::value_error(std::string(fn) + ": geometry must have 13 entries");
    int64_t v[13];
    const char* names[13] = {"P", "H", "W", "OH", "OW", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"};
    for (int i = 0; i < 13; ++i) {
      v[i] = t[i].cast<int64_t>();
      check_size(v[i], fn, names[i]);
      if (i >= 5 && i != 9 && i != 10 && v[i] < 1) throw py::value_error(std::string(fn) + ": " + names[i] + " must be >= 1");
    }
    const fc::PoolGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]};
    check_mul(g.P, g.H * g.W, fn), check_mul(g.P, g.OH * g.OW, fn);
    return g;
  };
  m.def("im2col", [conv_geom](int dtype, Ptr x, Ptr cols, const py::tuple& geom, Ptr stream) {
    const char* fn = "im2col";
    check_dtype(dtype, fn);
    const fc::ConvGeom g = conv_geom(geom, fn);
    check_ptr(x, g.N * g.C * g.H * g.W, fn, "x"), check_ptr(cols, g.C * g.kh * g.kw * g.N * g.OH * g.OW, fn, "cols");
    raise_if(fc::im2col(dtype, P<void>(x), P<void>(cols), g, S(stream)), fn);
  });
  m.def("col2im", [conv_geom](int dtype, Ptr cols, Ptr gx, const py::tuple& geom, Ptr stream) {
    const char* fn = "col2im";
    check_dtype(dtype, fn);
    const fc::ConvGeom g = conv_geom(geom, fn);
    check_ptr(cols, g.C * g.kh * g.kw * g.N * g.OH * g.OW, fn, "cols"), check_ptr(gx, g.N * g.C * g.H * g.W, fn, "gx");
    raise_if(fc::col2im(dtype, P<void>(cols), P<void>(gx), g, S(stream)), fn);
  });
  m.def("max_pool2d_forward", [pool_geom](int dtype, Ptr x, Ptr y, Ptr idx, const py::tuple& geom, Ptr stream) {
    const char* fn = "max_pool2d_forward";
    check_dtype(dtype, fn);
    const fc::PoolGeom g = pool_geom(geom, fn);
    check_ptr(x, g.P * g.H * g.W, fn, "x"), check_ptr(y, g.P * g.OH * g.OW, fn, "y");
    check_ptr(idx, g.P * g.OH * g.OW, fn, "indices");
    raise_if(fc::max_pool2d_forward(dtype, P<void>(x), P<void>(y), P<int64_t>(idx), g, S(stream)), fn);
  });
  m.def("max_pool2d_backward", [pool_geom](int dtype, Ptr gy, Ptr idx, Ptr gx, const py::tuple& geom, Ptr stream) {
    const char* fn = "max_pool2d_backward";
    check_dtype(dtype, fn);
    const fc::PoolGeom g = pool_geom(geom, fn);
    check_ptr(gy, g.P * g.OH * g.OW, fn, "gy"), check_ptr(idx, g.P * g.OH * g.OW, fn, "indices");
    check_ptr(gx, g.P * g.H * g.W, fn, "gx");
    raise_if(fc::max_pool2d_backward(dtype, P<void>(gy), P<int64_t>(idx), P<void>(gx), g, S(stream)), fn);
  });
  m.def("avg_pool2d_forward", [pool_geom](int dtype, Ptr x, Ptr y, const py::tuple& geom, bool count_include_pad,
                                          Ptr stream) {
    const char* fn = "avg_pool2d_forward";
    check_dtype(dtype, fn);
    const fc::PoolGeom g = pool_geom(geom, fn);
    check_ptr(x, g.P * g.H * g.W, fn, "x"), check_ptr(y, g.P * g.OH * g.OW, fn, "y");
    raise_if(fc::avg_pool2d_forward(dtype, P<void>(x), P<void>(y), g, count_include_pad, S(stream)), fn);
  });
  m.def("avg_pool2d_backward", [pool_geom](int dtype, Ptr gy, Ptr gx, const py::tuple& geom, bool count_include_pad,
                                           Ptr stream) {
    const char* fn = "avg_pool2d_backward";
    check_dtype(dtype, fn);
    const fc::PoolGeom g = pool_geom(geom, fn);
    check_ptr(gy, g.P * g.OH * g.OW, fn, "gy"), check_ptr(gx, g.P * g.H * g.W, fn, "gx");
    raise_if(fc::avg_pool2d_backward(dtype, P<void>(gy), P<void>(gx), g, count_include_pad, S(stream)), fn);
  });
  // the adaptive pools' sizes: P planes of H x W to OH x OW, each pooled side at least 1
  auto adaptive = [](int64_t p, int64_t h, int64_t w, int64_t oh, int64_t ow, const char* fn) {
    check_size(p, fn, "P"), check_size(h, fn, "H"), check_size(w, fn, "W"), check_size(oh, fn, "OH");
    check_size(ow, fn, "OW");
    if (h < 1 || w < 1 || oh < 1 || ow < 1) throw py::value_error(std::string(fn) + ": H, W, OH and OW must be >= 1");
    check_mul(h, w, fn), check_mul(oh, ow, fn), check_mul(p, h * w, fn), check_mul(p, oh * ow, fn);
  };
  m.def("adaptive_avg_pool2d_forward", [adaptive](int dtype, Ptr x, Ptr y, int64_t p, int64_t h, int64_t w, int64_t oh,
                                                  int64_t ow, Ptr stream) {
    const char* fn = "adaptive_avg_pool2d_forward";
    check_dtype(dtype, fn), adaptive(p, h, w, oh, ow, fn);
    check_ptr(x, p * h * w, fn, "x"), check_ptr(y, p * oh * ow, fn, "y");
    raise_if(fc::adaptive_avg_pool2d_forward(dtype, P<void>(x), P<void>(y), p, h, w, oh, ow, S(stream)), fn);
  });
  m.def("adaptive_avg_pool2d_backward", [adaptive](int dtype, Ptr gy, Ptr gx, int64_t p, int64_t h, int64_t w,
                                                   int64_t oh, int64_t ow, Ptr stream) {
    const char* fn = "adaptive_avg_pool2d_backward";
    check_dtype(dtype, fn), adaptive(p, h, w, oh, ow, fn);
    check_ptr(gy, p * oh * ow, fn, "gy"), check_ptr(gx, p * h * w, fn, "gx");
    raise_if(fc::adaptive_avg_pool2d_backward(dtype, P<void>(gy), P<void>(gx), p, h, w, oh, ow, S(stream)), fn);
  });
  m.def("batch_norm_forward", [](int dtype, Ptr x, Ptr w, Ptr b, Ptr rm, Ptr rv, Ptr y, Ptr mean, Ptr rstd, int64_t n,
                                 int64_t c, int64_t sp, bool training, double momentum, double eps, Ptr stream) {
    const char* fn = "batch_norm_forward";
    check_dtype(dtype, fn), check_size(n, fn, "N"), check_size(c, fn, "C"), check_size(sp, fn, "S");
    check_mul(n, c, fn), check_mul(n * c, sp, fn);
    if (c > 0x7fffffffLL) throw py::value_error("batch_norm_forward: too many channels for one launch");
    if (!(eps > 0)) throw py::value_error("batch_norm_forward: eps must be > 0");
    if (training && n * sp < 2 && c > 0)
      throw py::value_error("batch_norm_forward: expected more than 1 value per channel when training");
    if (!training && (rm == 0 || rv == 0) && c > 0)
      throw py::value_error("batch_norm_forward: evaluation needs running_mean and running_var");
    check_ptr(x, n * c * sp, fn, "x"), check_ptr(y, n * c * sp, fn, "y"), check_ptr(mean, c, fn, "mean");
    check_ptr(rstd, c, fn, "rstd");
    raise_if(fc::batch_norm_forward(dtype, P<void>(x), P<void>(w), P<void>(b), P<void>(rm), P<void>(rv), P<void>(y),
                                    P<void>(mean), P<void>(rstd), n, c, sp, training, momentum, eps, S(stream)), fn);
  });
  m.def("batch_norm_backward", [](int dtype, Ptr gy, Ptr x, Ptr w, Ptr mean, Ptr rstd, Ptr gx, Ptr gw, Ptr gb, int64_t n,
                                  int64_t c, int64_t sp, bool training, Ptr stream) {
    const char* fn = "batch_norm_backward";
    check_dtype(dtype, fn), check_size(n, fn, "N"), check_size(c, fn, "C"), check_size(sp, fn, "S");
    check_mul(n, c, fn), check_mul(n * c, sp, fn);
    if (c > 0x7fffffffLL) throw py::value_error("batch_norm_backward: too many channels for one launch");
    check_ptr(gy, n * c * sp, fn, "gy"), check_ptr(x, n * c * sp, fn, "x"), check_ptr(mean, c, fn, "mean");
    check_ptr(rstd, c, fn, "rstd");
    raise_if(fc::batch_norm_backward(dtype, P<void>(gy), P<void>(x), P<void>(w), P<void>(mean), P<void>(rstd),
                                     P<void>(gx), P<void>(gw), P<void>(gb), n, c, sp, training, S(stream)), fn);
  });
  m.attr("attention_max_features") = fc::attention_max_features();
  m.def("attention_forward", [](int dtype, Ptr q, Ptr k, Ptr v, Ptr mask, int64_t mb, int64_t ml, int64_t div, Ptr out,
                                Ptr lse, int64_t B, int64_t L, int64_t S_, int64_t E, int64_t Ev, bool causal,
                                double scale, double dropout_p, uint64_t seed, Ptr stream) {
    const char* fn = "attention_forward";
    check_attention(dtype, B, L, S_, E, Ev, mask, mb, ml, div, dropout_p, fn);
    check_ptr(q, B * L * E, fn, "q"), check_ptr(k, B * S_ * E, fn, "k"), check_ptr(v, B * S_ * Ev, fn, "v");
    check_ptr(out, B * L * Ev, fn, "out"), check_ptr(lse, B * L, fn, "lse");
    raise_if(fc::attention_forward(dtype, P<void>(q), P<void>(k), P<void>(v), P<void>(mask), mb, ml, div, P<void>(out),
                                   P<void>(lse), B, L, S_, E, Ev, causal, scale, dropout_p, seed, S(stream)),
             fn);
  });
  m.def("attention_backward", [](int dtype, Ptr gout, Ptr q, Ptr k, Ptr v, Ptr out, Ptr lse, Ptr mask, int64_t mb,
                                 int64_t ml, int64_t div, Ptr D, Ptr gq, Ptr gk, Ptr gv, int64_t B, int64_t L,
                                 int64_t S_, int64_t E, int64_t Ev, bool causal, double scale, double dropout_p,
                                 uint64_t seed, Ptr stream) {
    const char* fn = "attention_backward";
    check_attention(dtype, B, L, S_, E, Ev, mask, mb, ml, div, dropout_p, fn);
    check_ptr(gout, B * L * Ev, fn, "gout"), check_ptr(q, B * L * E, fn, "q"), check_ptr(k, B * S_ * E, fn, "k");
    check_ptr(v, B * S_ * Ev, fn, "v"), check_ptr(out, B * L * Ev, fn, "out"), check_ptr(lse, B * L, fn, "lse");
    check_ptr(D, B * L, fn, "D"), check_ptr(gq, B * L * E, fn, "gq"), check_ptr(gk, B * S_ * E, fn, "gk");
    check_ptr(gv, B * S_ * Ev, fn, "gv");
    raise_if(fc::attention_backward(dtype, P<void>(gout), P<void>(q), P<void>(k), P<void>(v), P<void>(out),
                                    P<void>(lse), P<void>(mask), mb, ml, div, P<void>(D), P<void>(gq), P<void>(gk),
                                    P<void>(gv), B, L, S_, E, Ev, causal, scale, dropout_p, seed, S(stream)),
             fn);
  });
  m.def("layer_norm_forward", [](int dtype, Ptr x, Ptr w, Ptr b, Ptr y, Ptr mean, Ptr rstd, int64_t rows, int64_t d,
                                 double eps, Ptr stream) {
    const char* fn = "layer_norm_forward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(d, fn, "D"), check_rows(rows, fn),
        check_mul(rows, d, fn);
    if (!(eps > 0)) throw py::value_error("layer_norm_forward: eps must be > 0");
    if (rows > 0 && d == 0) throw py::value_error("layer_norm_forward: D must be >= 1");
    check_ptr(x, rows * d, fn, "x"), check_ptr(y, rows * d, fn, "y"), check_ptr(mean, rows, fn, "mean");
    check_ptr(rstd, rows, fn, "rstd");
    raise_if(fc::layer_norm_forward(dtype, P<void>(x), P<void>(w), P<void>(b), P<void>(y), P<void>(mean),
                                    P<void>(rstd), rows, d, eps, S(stream)), fn);
  });
  m.def("layer_norm_backward", [](int dtype, Ptr gy, Ptr x, Ptr w, Ptr mean, Ptr rstd, Ptr gx, Ptr gw, Ptr gb,
                                  int64_t rows, int64_t d, Ptr stream) {
    const char* fn = "layer_norm_backward";
    check_dtype(dtype, fn), check_size(rows, fn, "rows"), check_size(d, fn, "D"), check_rows(rows, fn),
        check_mul(rows, d, fn);
    check_ptr(gy, rows * d, fn, "gy"), check_ptr(x, rows * d, fn, "x"), check_ptr(mean, rows, fn, "mean");
    check_ptr(rstd, rows, fn, "rstd");
    raise_if(fc::layer_norm_backward(dtype, P<void>(gy), P<void>(x), P<void>(w), P<void>(mean), P<void>(rstd),
                                     P<void>(gx), P<void>(gw), P<void>(gb), rows, d, S(stream)), fn);
  });
  m.def("lstm_cell_forward", [](int dtype, Ptr xw, Ptr hw, Ptr c, Ptr h, Ptr out, Ptr gates, Ptr cs, Ptr lengths,
                                int64_t t, int64_t b, int64_t hid, Ptr stream) {
    const char* fn = "lstm_cell_forward";
    check_dtype(dtype, fn), check_size(b, fn, "B"), check_size(hid, fn, "H"), check_size(t, fn, "t");
    check_mul(b, 4 * hid, fn);
    const int64_t n = b * hid;
    check_ptr(xw, 4 * n, fn, "xw"), check_ptr(hw, 4 * n, fn, "hw"), check_ptr(c, n, fn, "c"), check_ptr(h, n, fn, "h");
    check_ptr(out, n, fn, "out");
    raise_if(fc::lstm_cell_forward(dtype, P<void>(xw), P<void>(hw), P<void>(c), P<void>(h), P<void>(out), P<void>(gates),
                                   P<void>(cs), P<int64_t>(lengths), t, b, hid, S(stream)), fn);
  });
  m.def("lstm_cell_backward", [](int dtype, Ptr gates, Ptr c, Ptr cprev, Ptr dout, Ptr dh, Ptr dc, Ptr dpre, Ptr direct,
                                 Ptr lengths, int64_t t, int64_t b, int64_t hid, Ptr stream) {
    const char* fn = "lstm_cell_backward";
    check_dtype(dtype, fn), check_size(b, fn, "B"), check_size(hid, fn, "H"), check_size(t, fn, "t");
    check_mul(b, 4 * hid, fn);
    const int64_t n = b * hid;
    check_ptr(gates, 4 * n, fn, "gates"), check_ptr(c, n, fn, "c"), check_ptr(cprev, n, fn, "cprev");
    check_ptr(dh, n, fn, "dh"), check_ptr(dc, n, fn, "dc"), check_ptr(dpre, 4 * n, fn, "dpre");
    check_ptr(direct, n, fn, "direct");
    raise_if(fc::lstm_cell_backward(dtype, P<void>(gates), P<void>(c), P<void>(cprev), P<void>(dout), P<void>(dh),
                                    P<void>(dc), P<void>(dpre), P<void>(direct), P<int64_t>(lengths), t, b, hid,
                                    S(stream)), fn);
  });
  m.def("gru_cell_forward", [](int dtype, Ptr xw, Ptr hw, Ptr bhh, Ptr h, Ptr out, Ptr gates, Ptr hnl, Ptr lengths,
                               int64_t t, int64_t b, int64_t hid, Ptr stream) {
    const char* fn = "gru_cell_forward";
    check_dtype(dtype, fn), check_size(b, fn, "B"), check_size(hid, fn, "H"), check_size(t, fn, "t");
    check_mul(b, 3 * hid, fn);
    const int64_t n = b * hid;
    check_ptr(xw, 3 * n, fn, "xw"), check_ptr(hw, 3 * n, fn, "hw"), check_ptr(h, n, fn, "h");
    check_ptr(out, n, fn, "out");
    raise_if(fc::gru_cell_forward(dtype, P<void>(xw), P<void>(hw), P<void>(bhh), P<void>(h), P<void>(out),
                                  P<void>(gates), P<void>(hnl), P<int64_t>(lengths), t, b, hid, S(stream)), fn);
  });
  m.def("gru_cell_backward", [](int dtype, Ptr gates, Ptr hnl, Ptr hprev, Ptr dout, Ptr dh, Ptr dxw, Ptr dhw,
                                Ptr direct, Ptr lengths, int64_t t, int64_t b, int64_t hid, Ptr stream) {
    const char* fn = "gru_cell_backward";
    check_dtype(dtype, fn), check_size(b, fn, "B"), check_size(hid, fn, "H"), check_size(t, fn, "t");
    check_mul(b, 3 * hid, fn);
    const int64_t n = b * hid;
    check_ptr(gates, 3 * n, fn, "gates"), check_ptr(hnl, n, fn, "hnl"), check_ptr(hprev, n, fn, "hprev");
    check_ptr(dh, n, fn, "dh"), check_ptr(dxw, 3 * n, fn, "dxw"), check_ptr(dhw, 3 * n, fn, "dhw");
    check_ptr(direct, n, fn, "direct");
    raise_if(fc::gru_cell_backward(dtype, P<void>(gates), P<void>(hnl), P<void>(hprev), P<void>(dout), P<void>(dh),
                                   P<void>(dxw), P<void>(dhw), P<void>(direct), P<int64_t>(lengths), t, b, hid,
                                   S(stream)), fn);
  });
  m.def("rnn_cell_forward", [](int act, int dtype, Ptr xw, Ptr hw, Ptr h, Ptr out, Ptr gates, Ptr lengths, int64_t t,
                               int64_t b, int64_t hid, Ptr stream) {
    const char* fn = "rnn_cell_forward";
    if (act != 0 && act != 1) throw py::value_error("rnn_cell_forward: act must be 0 (relu) or 1 (tanh)");
    check_dtype(dtype, fn), check_size(b, fn, "B"), check_size(hid, fn, "H"), check_size(t, fn, "t");
    check_mul(b, hid, fn);
    const int64_t n = b * hid;
    check_ptr(xw, n, fn, "xw"), check_ptr(hw, n, fn, "hw"), check_ptr(h, n, fn, "h"), check_ptr(out, n, fn, "out");
    raise_if(fc::rnn_cell_forward(act, dtype, P<void>(xw), P<void>(hw), P<void>(h), P<void>(out), P<void>(gates),
                                  P<int64_t>(lengths), t, b, hid, S(stream)), fn);
  });
  m.def("rnn_cell_backward", [](int act, int dtype, Ptr out, Ptr dout, Ptr dh, Ptr dpre, Ptr direct, Ptr lengths,
                                int64_t t, int64_t b, int64_t hid, Ptr stream) {
    const char* fn = "rnn_cell_backward";
    if (act != 0 && act != 1) throw py::value_error("rnn_cell_backward: act must be 0 (relu) or 1 (tanh)");
    check_dtype(dtype, fn), check_size(b, fn, "B"), check_size(hid, fn, "H"), check_size(t, fn, "t");
    check_mul(b, hid, fn);
    const int64_t n = b * hid;
    check_ptr(out, n, fn, "out"), check_ptr(dh, n, fn, "dh"), check_ptr(dpre, n, fn, "dpre");
    check_ptr(direct, n, fn, "direct");
    raise_if(fc::rnn_cell_backward(act, dtype, P<void>(out), P<void>(dout), P<void>(dh), P<void>(dpre),
                                   P<void>(direct), P<int64_t>(lengths), t, b, hid, S(stream)), fn);
  });
  auto additive = [](int dtype, int64_t b, int64_t l, int64_t s, int64_t h, const char* fn) {
    check_dtype(dtype, fn), check_size(b, fn, "B"), check_size(l, fn, "L"), check_size(s, fn, "S");
    check_size(h, fn, "H"), check_mul(b, l, fn), check_mul(b * l, s > h ? s : h, fn), check_mul(b, s, fn);
    check_mul(b * s, h, fn);
  };
  m.def("additive_attention_forward", [additive](int dtype, Ptr qp, Ptr kp, Ptr v, Ptr s, int64_t b, int64_t l,
                                                 int64_t sl, int64_t h, Ptr stream) {
    const char* fn = "additive_attention_forward";
    additive(dtype, b, l, sl, h, fn);
    const int64_t scores = b * l * sl, reads = scores > 0 ? h : 0;  // no features: scores 0, nothing read
    check_ptr(qp, reads, fn, "qp"), check_ptr(kp, reads, fn, "kp"), check_ptr(v, reads, fn, "v");
    check_ptr(s, scores, fn, "s");
    raise_if(fc::additive_attention_forward(dtype, P<void>(qp), P<void>(kp), P<void>(v), P<void>(s), b, l, sl, h,
                                            S(stream)), fn);
  });
  m.def("additive_attention_backward", [additive](int dtype, Ptr gs, Ptr qp, Ptr kp, Ptr v, Ptr gq, Ptr vpart, Ptr gk,
                                                  int64_t b, int64_t l, int64_t sl, int64_t h, Ptr stream) {
    const char* fn = "additive_attention_backward";
    additive(dtype, b, l, sl, h, fn);
    // each array as the kernels read it: qp over (B, L, H), kp over (B, S, H), gs and v wherever both run
    check_ptr(qp, b * l * h, fn, "qp"), check_ptr(kp, b * sl * h, fn, "kp"), check_ptr(gs, b * l * sl, fn, "gs");
    check_ptr(v, h, fn, "v");
    raise_if(fc::additive_attention_backward(dtype, P<void>(gs), P<void>(qp), P<void>(kp), P<void>(v), P<void>(gq),
                                             P<void>(vpart), P<void>(gk), b, l, sl, h, S(stream)), fn);
  });
  m.def("embedding_backward", [](int dtype, Ptr gy, Ptr idx, Ptr gw, int64_t n, int64_t d, int64_t v,
                                 int64_t padding_idx, Ptr stream) {
    const char* fn = "embedding_backward";
    check_dtype(dtype, fn), check_size(n, fn, "n"), check_size(d, fn, "d"), check_size(v, fn, "num_embeddings");
    check_mul(n, d, fn), check_mul(v, d, fn);
    check_ptr(gy, n * d, fn, "gy"), check_ptr(idx, n, fn, "indices"), check_ptr(gw, v * d, fn, "gw");
    raise_if(fc::embedding_backward(dtype, P<void>(gy), P<int64_t>(idx), P<void>(gw), n, d, v, padding_idx,
                                    S(stream)), fn);
  });
}
