#include "threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTDL_PAUSE() _mm_pause()
#else
#define FASTDL_PAUSE() std::this_thread::yield()
#endif

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace fastdl {

namespace {

thread_local bool tl_in_part = false;

// How long an idle thread keeps looking for work before it sleeps: spinning, then yielding the core
// to any other runnable thread.  Measured with bench/bench_contention.py (LeNet-5 step / LSTM
// forward, ms, alone -> two processes at once on 2 cores):
//   sleep at once        6.96 / 29.9 -> 7.00 / 24.6     (the LSTM's many short regions pay wake-ups)
//   20 us + 100 us       6.47 / 18.8 -> 7.92 / 26.0
//   100 us + 500 us      5.56 / 19.5 -> 7.50 / 24.9     (chosen)
//   200 us + 1 ms        5.46 / 15.9 -> 8.14 / 26.1
//   2 ms + 5 ms          5.65 / 17.5 -> 15.4 / 40.6     (spinners steal the other process's core)
constexpr auto kSpin = std::chrono::microseconds(100);
constexpr auto kYield = std::chrono::microseconds(500);

// Waits until ready() holds: spin, then yield, then sleep on cv (woken by whoever makes it hold,
// under m).  `sleepers` counts the threads asleep on cv, so the waker knows whether to notify.
template <class Ready>
void wait_for(Ready ready, std::mutex& m, std::condition_variable& cv, std::atomic<int>& sleepers) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (ready()) return;
    if ((i & 63) == 63) {
      const auto dt = std::chrono::steady_clock::now() - t0;
      if (dt > kSpin + kYield) break;
      if (dt > kSpin) std::this_thread::yield();
    }
    FASTDL_PAUSE();
  }
  std::unique_lock<std::mutex> lk(m);
  sleepers.fetch_add(1);
  cv.wait(lk, ready);
  sleepers.fetch_sub(1);
}

void wake(std::mutex& m, std::condition_variable& cv, std::atomic<int>& sleepers) {
  if (sleepers.load() > 0) {
    std::lock_guard<std::mutex> lk(m);
    cv.notify_all();
  }
}

class Pool {
 public:
  explicit Pool(int n) { start(n); }
  ~Pool() { stop(); }

  int size() const { return size_; }

  void resize(int n) {
    std::lock_guard<std::mutex> use(use_);
    if (n == size_) return;
    stop();
    start(n);
  }

  void run(int64_t nparts, PartFn f) {
    std::unique_lock<std::mutex> use(use_, std::try_to_lock);
    if (!use.owns_lock() || size_ == 1 || nparts > kMask) {  // the pool is busy, single, or too fine
      serial(nparts, f);
      return;
    }
    fn_ = &f;
    done_.store(0);
    gen_ = (gen_ + 1) & kMask;
    job_.store((gen_ << 40) | (uint64_t(nparts) << 20));  // publishes fn_ with the job (seq_cst)
    wake(m_, work_cv_, work_sleepers_);
    work();
    // every part is claimed; wait for the ones still running elsewhere
    wait_for([&] { return done_.load() == nparts; }, m_, done_cv_, done_sleepers_);
    if (error_) {  // a part threw (an allocation failed): the caller gets the first exception
      std::exception_ptr e = nullptr;
      std::swap(e, error_);
      std::rethrow_exception(e);
    }
  }

 private:
  static constexpr uint64_t kMask = (uint64_t(1) << 20) - 1;

  static void serial(int64_t nparts, PartFn f) {
    const bool outer = tl_in_part;
    tl_in_part = true;
    for (int64_t p = 0; p < nparts; ++p) f(p, nparts);
    tl_in_part = outer;
  }

  // Claims and runs parts until none is left.  The job word packs generation (bits 40+), part
  // count (20-39) and the next unclaimed part (0-19), so a claim is one compare-exchange on it: a
  // thread can only claim a part of the job it read, and the job (fn_) cannot change before every
  // claimed part is done, since the caller waits for them before it publishes the next one.
  void work() {
    tl_in_part = true;
    uint64_t v = job_.load();
    for (;;) {
      const uint64_t part = v & kMask, n = (v >> 20) & kMask;
      if (part >= n) break;
      if (!job_.compare_exchange_weak(v, v + 1)) continue;
      try {
        (*fn_)(int64_t(part), int64_t(n));
      } catch (...) {  // kept for the caller; the part counts as done so that nobody waits forever
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1) + 1 == int64_t(n)) wake(m_, done_cv_, done_sleepers_);
      v = job_.load();
    }
    tl_in_part = false;
  }

  void worker() {
    uint64_t seen = job_.load() >> 40;
    for (;;) {
      wait_for([&] { return (job_.load() >> 40) != seen || quit_.load(); }, m_, work_cv_, work_sleepers_);
      if (quit_.load()) return;
      seen = job_.load() >> 40;
      work();
    }
  }

  void start(int n) {
    size_ = std::max(1, n);
    quit_.store(false);
    for (int i = 1; i < size_; ++i) threads_.emplace_back([this] { worker(); });
  }

  void stop() {
    quit_.store(true);
    {
      std::lock_guard<std::mutex> lk(m_);
      work_cv_.notify_all();
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  int size_ = 1;
  std::vector<std::thread> threads_;
  std::mutex use_;  // one region at a time
  std::mutex m_;
  std::condition_variable work_cv_, done_cv_;
  std::atomic<int> work_sleepers_{0}, done_sleepers_{0};
  std::atomic<uint64_t> job_{0};  // generation | parts | next part (see work())
  uint64_t gen_ = 0;                 // the caller's copy of the current generation
  std::atomic<bool> quit_{false};
  const PartFn* fn_ = nullptr;
  std::atomic<int64_t> done_{0};
  std::exception_ptr error_ = nullptr;  // the first exception a part threw (under m_)
};

// Physical cores this process may run on: distinct (package, core) pairs of its allowed CPUs.
int physical_cores() {
  int logical = int(std::thread::hardware_concurrency());
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    std::set<std::pair<std::string, std::string>> cores;
    int allowed = 0;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (!CPU_ISSET(c, &set)) continue;
      ++allowed;
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
      std::ifstream pkg(base + "physical_package_id"), core(base + "core_id");
      std::string p, k;
      if (!(pkg >> p) || !(core >> k)) return allowed > 0 ? std::max(1, logical) : 1;
      cores.emplace(p, k);
    }
    if (!cores.empty()) return int(cores.size());
    if (allowed > 0) return allowed;
  }
#endif
  return std::max(1, logical);
}

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return physical_cores();
}

// The pool is created on first use and never destroyed (workers still running at exit are fine; a
// destructor joining them during interpreter shutdown is not).  A child process made by fork() has
// none of its parent's workers and a copy of its locks in whatever state they were: it starts a
// pool of its own, of the size the parent had set.
std::atomic<Pool*> g_pool{nullptr};
std::atomic<int> g_size{0};

void forget_pool_in_child() { g_pool.store(nullptr); }

Pool& pool() {
  Pool* p = g_pool.load();
  if (p) return *p;
  static const bool registered = [] {
#ifdef __linux__
    pthread_atfork(nullptr, nullptr, forget_pool_in_child);
#endif
    return true;
  }();
  (void)registered;
  const int n = g_size.load() > 0 ? g_size.load() : default_threads();
  Pool* fresh = new Pool(n);
  if (g_pool.compare_exchange_strong(p, fresh)) return *fresh;
  delete fresh;  // another thread made one first
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) {
  g_size.store(std::max(1, n));
  pool().resize(std::max(1, n));
}
bool in_parallel() { return tl_in_part; }

void parallel_parts(int64_t nparts, PartFn f) {
  if (nparts <= 1 || tl_in_part) {
    for (int64_t p = 0; p < nparts; ++p) f(p, nparts);
    return;
  }
  pool().run(nparts, f);
}

}  // namespace fastdl
