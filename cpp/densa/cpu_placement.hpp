// Which CPU a thread runs on, and keeping a thread off one CPU. Linux; elsewhere these
// report "unknown" and do nothing. Pure C++: nothing here knows Python.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <thread>

namespace densa {

// Why: when a pool worker is woken, Linux tends to place it on the CPU of the thread
// that woke it (the two share a cache); both then run on one CPU, taking turns a time
// slice at a time, until the load balancer separates them milliseconds later. Two
// threads that wait on each other every few microseconds (hidden_split.hpp) then crawl:
// a digits fit ran 2.5x slower than on one thread. A product cut into two slabs after an
// idle pause loses the milliseconds until the separation: K1 (a 1024 x 1024 layer at
// batch 512, ~20 ms) ran at 148 GFLOP/s against 184 with the two threads pinned apart.
// So the pool's worker (parallel.hpp) and the splits' teams (two_teams.hpp) leave the
// caller's CPU when they find themselves on it.

// The CPU the calling thread is on, or -1 if unknown.
inline int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

// How many CPUs the calling thread may run on (at least 1).
inline int allowed_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
#endif
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// While alive, keeps the calling thread off one CPU (its affinity mask without it; no
// change if that would leave no CPU); restores the thread's mask when destroyed.
class AvoidCpu {
 public:
  explicit AvoidCpu(int cpu) : cpu_(cpu) {
#if defined(__linux__)
    if (cpu < 0 || cpu >= CPU_SETSIZE) return;
    if (pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) != 0) return;
    cpu_set_t without = saved_;
    CPU_CLR(cpu, &without);
    if (CPU_COUNT(&without) == 0) return;
    active_ = pthread_setaffinity_np(pthread_self(), sizeof without, &without) == 0;
#else
    (void)cpu;
#endif
  }
  // Whether the mask was changed (not when the thread may run on that CPU only).
  bool active() const { return active_; }
  // The CPU kept off (or asked to be).
  int cpu() const { return cpu_; }
  AvoidCpu(const AvoidCpu&) = delete;
  AvoidCpu& operator=(const AvoidCpu&) = delete;
  ~AvoidCpu() {
#if defined(__linux__)
    if (active_) pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
#endif
  }

 private:
#if defined(__linux__)
  cpu_set_t saved_{};
#endif
  int cpu_;
  bool active_ = false;
};

}  // namespace densa
