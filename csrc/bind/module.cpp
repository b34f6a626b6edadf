// fastdl._C: assembles the families' bindings (csrc/bind/<family>.cpp) and the build's info functions.
// Function names and signatures equal those of fastdl/reference/.
#include "../cpu.h"
#include "../gemm_packed.h"
#include "../threads.h"
#include "checks.h"

PYBIND11_MODULE(_C, m) {
  namespace py = pybind11;
  using namespace fastdl::bind;
  m.doc() = "fastdl native kernels (C++ on one thread pool, BLAS)";
  m.attr("__version__") = FASTDL_VERSION;
  m.attr("cuda_built") = false;
  fastdl::blas_single_threaded();

  m.def("set_num_threads", [](int n) {
    if (n < 1) value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
    fastdl::set_num_threads(n);
  }, py::arg("n"));
  m.def("get_num_threads", &fastdl::num_threads);
  m.def("blas_config", &fastdl::blas_config);
  m.def("blas_corename", &fastdl::blas_corename);
  m.def("cpu_features", &fastdl::cpu_features);
  m.def("simd_isa", &fastdl::simd_isa);
  m.def(
      "fma_peak_gflops",
      [](int64_t iters) {
        if (iters < 1) value_error("fma_peak_gflops: iters must be >= 1, got " + std::to_string(iters));
        py::gil_scoped_release nogil;
        return fastdl::fma_peak_flops(iters) / 1e9;
      },
      py::arg("iters") = 20'000'000,
      "GFLOP/s of independent FMA chains on the calling core with the widest SIMD build the CPU runs (0 "
      "without one): the peak the benchmarks report their rates against.");

  bind_gemm(m);
  bind_elementwise(m);
  bind_softmax(m);
  bind_loss(m);
  bind_conv(m);
  bind_pool(m);
  bind_norm(m);
  bind_embedding(m);
  bind_rnn(m);
  bind_attention(m);
  bind_wordvec(m);
  bind_optim(m);
}
