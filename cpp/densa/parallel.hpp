// densa's one thread pool. Pure C++ (std::thread); nothing here knows Python.
//
// Why densa owns its threads instead of letting OpenBLAS or Eigen+OpenMP thread each
// product (both measured on the development machine):
//   * results: OpenBLAS's threading changes how it splits a product, and the sums it
//     forms, with the thread count. densa splits each product into slabs whose bounds
//     depend on the product's shape only (gemm.hpp), and each slab is one single-threaded
//     BLAS call, so every output element is summed in the same order whatever the
//     thread count: results are bitwise identical for 1, 2, ... threads;
//   * latency: a small product runs on the calling thread, never through the pool;
//   * coexistence: idle workers sleep on a condition variable (no spinning), so they do
//     not steal the cores from NumPy's own OpenBLAS pool between calls.
//
// The pool holds num_threads() - 1 workers; the calling thread is the remaining one.
// post() starts work on the workers without waiting (hidden_split.hpp wakes its partner
// thread that way); the next run waits for it first.
// Workers start lazily, on the first product that is split. One caller uses the pool at
// a time: a second caller (another Python thread with the GIL released, or a nested
// call) runs its tasks inline, which gives the same results, only later.
// Workers compute with the rounding and flush-to-zero bits of the thread that handed
// them the work, exceptions masked (float_mode.hpp), so that a slab's bits do not
// depend on which thread computed it.
// A worker keeps off the CPU of the thread that last handed it work (its affinity mask
// without that CPU; cpu_placement.hpp says why), so that waking it never puts it there.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cpu_placement.hpp"
#include "float_mode.hpp"

namespace densa {

// Waits up to kSpinMicroseconds for pred() by polling before the caller falls back to a
// condition variable. A training batch runs its parallel products a few hundred
// microseconds apart, and one layer's forward and backward a few milliseconds apart;
// waking a sleeping thread through the kernel costs tens of microseconds, and on a
// virtual machine whose idle CPU has halted, up to milliseconds (K1 measured 84 against
// 128 GFLOP/s with a 50 us poll when calls came 0.2 s apart). The poll is bounded, so an
// idle pool still sleeps and takes no CPU; NumPy's OpenBLAS workers poll for ~0.1 s.
inline constexpr int kSpinMicroseconds = 2000;

template <class Pred>
bool spin_until(Pred pred) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::microseconds(kSpinMicroseconds);
  for (unsigned i = 1;; ++i) {
    if (pred()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((i & 63) == 0) {
      if (clock::now() > deadline) return false;
      std::this_thread::yield();  // more threads than cores: let the others run
    }
  }
}

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {}
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { stop_workers(); }

  int num_threads() const { return n_threads_.load(); }

  // Takes effect at once; waits for a product in flight on the pool to finish first.
  void set_num_threads(int n) {
    std::lock_guard<std::mutex> busy(busy_);
    stop_workers();
    n_threads_ = std::max(1, n);
  }

  // Runs task(i) for every i in [0, n_tasks), spread over the pool and the caller, and
  // returns when all are done. Which thread runs which i varies; what each task(i)
  // computes must not depend on it. The first exception thrown by a task is rethrown.
  void run(std::int64_t n_tasks, const std::function<void(std::int64_t)>& task) {
    if (n_tasks <= 0) return;
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (n_tasks == 1 || n_threads_ <= 1 || !busy.owns_lock()) {
      for (std::int64_t i = 0; i < n_tasks; ++i) task(i);
      return;
    }
    dispatch(n_tasks, task);
  }

  // Runs task(0) and task(1) at the same time, on two threads, and returns true; or
  // returns false at once, having run nothing, when the pool cannot promise a second
  // thread (one thread set, or another caller holds the pool). For tasks that wait on
  // each other, which run() could deadlock by running them one after the other. No
  // thread can take both: it would have to finish one first, which needs the other.
  bool run_pair(const std::function<void(std::int64_t)>& task) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (n_threads_ < 2 || !busy.owns_lock()) return false;
    dispatch(2, task);
    return true;
  }

  // Starts task(i) on each worker (i = 0 .. workers - 1) and returns without waiting;
  // the next run or run_pair waits for it first. Does nothing on one thread or while
  // another caller holds the pool.
  void post(std::function<void(std::int64_t)> task) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (n_threads_ < 2 || !busy.owns_lock()) return;
    wait_idle();  // the worker may still run the task posted before
    posted_ = std::move(task);
    publish(&posted_, n_threads_.load() - 1);
  }

 private:
  // Spreads task(0..n_tasks) over the workers and the caller; the caller holds busy_.
  void dispatch(std::int64_t n_tasks, const std::function<void(std::int64_t)>& task) {
    publish(&task, n_tasks);
    work();
    spin_until([this] { return active_.load(std::memory_order_acquire) == 0; });
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return active_ == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  // Hands task(0..n_tasks) to the workers once the last task is done; the caller holds
  // busy_.
  void publish(const std::function<void(std::int64_t)>* task, std::int64_t n_tasks) {
    wait_idle();
    start_workers();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = task;
      mode_ = float_mode();
      caller_cpu_ = current_cpu();
      n_tasks_ = n_tasks;
      next_ = 0;
      active_ = static_cast<int>(workers_.size());
      error_ = nullptr;
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    wake_.notify_all();
  }

  // Waits until no worker runs a task (a posted one); the caller holds busy_.
  void wait_idle() {
    if (active_.load(std::memory_order_acquire) == 0) return;
    spin_until([this] { return active_.load(std::memory_order_acquire) == 0; });
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return active_ == 0; });
  }

  // Claims task indices until none is left; runs on the caller and on every worker.
  void work() {
    for (;;) {
      const std::int64_t i = next_.fetch_add(1);
      if (i >= n_tasks_) return;
      try {
        (*task_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void start_workers() {
    const size_t want = static_cast<size_t>(n_threads_.load() - 1);
    if (workers_.size() == want) return;
    stop_workers();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = false;
      stop_flag_.store(false, std::memory_order_release);
      // Workers wake up for generations after the one they were born in.
      generation_seen_at_start_ = generation_;
    }
    workers_.reserve(want);
    for (size_t w = 0; w < want; ++w) workers_.emplace_back([this] { worker_loop(); });
  }

  void worker_loop() {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), "densa-worker");  // as top, ps and py-spy show it
#endif
    std::uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_seen_at_start_;
    }
    // The worker's mask without the CPU of the thread that last handed it work, kept
    // between tasks and while it sleeps, so that the next wake-up cannot put it there
    // (see the header); renewed when that thread has moved to another CPU.
    std::optional<AvoidCpu> apart;
    for (;;) {
      spin_until([&] {
        return stop_flag_.load(std::memory_order_acquire) ||
               published_.load(std::memory_order_acquire) != seen;
      });
      int caller_cpu;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        caller_cpu = caller_cpu_;
      }
      if (caller_cpu >= 0 && (!apart || apart->cpu() != caller_cpu)) {
        apart.reset();  // the mask the worker was started with, then without caller_cpu
        apart.emplace(caller_cpu);
      }
      const ScopedFloatMode mode(mode_);  // the publisher's (see the header)
      work();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--active_ == 0) done_.notify_one();
    }
  }

  void stop_workers() {
    if (workers_.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      stop_flag_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    // A worker told to stop before it took a posted task leaves it untaken: nothing runs
    // any more, so nothing is left to wait for.
    active_.store(0, std::memory_order_release);
    task_ = nullptr;
  }

  std::atomic<int> n_threads_;
  std::mutex busy_;  // held by the one caller using the pool
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t generation_seen_at_start_ = 0;
  std::atomic<int> active_{0};
  // Mirrors of generation_ and stop_ readable without the mutex, for spin_until.
  std::atomic<std::uint64_t> published_{0};
  std::atomic<bool> stop_flag_{false};
  const std::function<void(std::int64_t)>* task_ = nullptr;
  std::function<void(std::int64_t)> posted_;  // post's task, while workers may run it
  std::int64_t n_tasks_ = 0;
  unsigned mode_ = 0;    // the floating-point mode of the thread that published the task
  int caller_cpu_ = -1;  // the CPU it published from (-1: unknown)
  std::atomic<std::int64_t> next_{0};
  std::exception_ptr error_;
};

namespace detail {

inline int default_num_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// The process-wide pool. Never deleted: joining threads while a process exits (or
// unloads the extension) can hang. After fork() the child has none of the parent's
// threads, and the pool's mutexes may be held by a thread that does not exist there:
// the child drops (leaks) the pool and builds a fresh one on first use.
struct PoolHolder {
  std::atomic<ThreadPool*> pool{nullptr};
  std::atomic<int> wanted{0};  // 0: not set yet (default_num_threads())
  std::mutex create;
};

inline PoolHolder& pool_holder() {
  static PoolHolder* holder = [] {
    auto* h = new PoolHolder();
    pthread_atfork(nullptr, nullptr, [] {
      PoolHolder& hh = pool_holder();
      // The old pool's memory and mutexes are left as they are (leaked), on purpose.
      hh.pool.store(nullptr);
      new (&hh.create) std::mutex();
    });
    return h;
  }();
  return *holder;
}

}  // namespace detail

inline ThreadPool& thread_pool() {
  detail::PoolHolder& h = detail::pool_holder();
  ThreadPool* p = h.pool.load();
  if (p) return *p;
  std::lock_guard<std::mutex> lock(h.create);
  p = h.pool.load();
  if (!p) {
    const int n = h.wanted.load();
    p = new ThreadPool(n > 0 ? n : detail::default_num_threads());
    h.pool.store(p);
  }
  return *p;
}

// Number of threads densa's products use (the caller's included).
inline int get_num_threads() {
  detail::PoolHolder& h = detail::pool_holder();
  if (ThreadPool* p = h.pool.load()) return p->num_threads();
  const int n = h.wanted.load();
  return n > 0 ? n : detail::default_num_threads();
}

inline void set_num_threads(int n) {
  n = std::max(1, n);
  detail::PoolHolder& h = detail::pool_holder();
  h.wanted.store(n);
  thread_pool().set_num_threads(n);
}

}  // namespace densa
