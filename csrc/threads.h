// fastdl's one thread pool.  Every parallel kernel runs on it, and BLAS runs single-threaded inside
// it (gemm.cpp partitions large products over the pool itself), so no second pool competes for the
// cores, and nothing depends on which OpenMP runtime was loaded first or on environment variables
// read at import.
//
// A parallel region is split into `nt` parts that are run in any order by whichever threads are
// free: the caller and the workers claim parts from a counter, so a worker the OS has descheduled
// (two processes on the machine, PyTorch's threads beside ours) delays nothing, its part is taken
// by a thread that is running.  A part's index, not the thread that runs it, decides what it
// computes and where it writes, so results do not depend on scheduling.
//
// Idle workers spin briefly (the next kernel usually follows within microseconds), then yield, then
// sleep on a condition variable; the spin is short enough that an oversubscribed machine loses
// little to it (bench/bench_contention.py).
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace fastdl {

// Threads the kernels use: set_num_threads(n), else OMP_NUM_THREADS, else the physical cores.
int num_threads();
void set_num_threads(int n);
// True inside a part of a parallel region: nested regions then run serially, in the calling thread.
bool in_parallel();

// A non-owning reference to a callable f(part, nparts).
class PartFn {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, PartFn>>>
  PartFn(F&& f) : obj_(const_cast<void*>(static_cast<const void*>(&f))),  // NOLINT(google-explicit-constructor)
                  call_([](void* o, int64_t p, int64_t n) { (*static_cast<std::remove_reference_t<F>*>(o))(p, n); }) {}
  void operator()(int64_t part, int64_t nparts) const { call_(obj_, part, nparts); }

 private:
  void* obj_;
  void (*call_)(void*, int64_t, int64_t);
};

// Runs f(part, nparts) for every part in [0, nparts) and returns when all are done.  nparts <= 1,
// a nested call, or a call while another thread holds the pool runs every part in this thread.
void parallel_parts(int64_t nparts, PartFn f);

}  // namespace fastdl
