// What two threads working on one training batch need (hidden_split.hpp): a count one
// publishes and the other waits for, cache hints, and buffers that never share a cache
// line (which CPU a thread runs on: cpu_placement.hpp). Pure C++: nothing here knows Python.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "cpu_placement.hpp"
#include "parallel.hpp"
#include "types.hpp"

namespace densa {

// A count that one thread raises and another waits for: "my part of batch k is
// published". The waiter polls (spin_until), then sleeps on a condition variable, so
// that a partner descheduled for long (a busy or oversubscribed machine) costs no CPU.
// abort() wakes a waiter for good: its partner failed and will publish nothing more.
class alignas(64) Signal {  // its own cache line: the two teams' signals sit side by side
 public:
  void publish(std::int64_t count) {
    count_.store(count, std::memory_order_seq_cst);
    // seq_cst on both sides (here, and sleepers_ then count_ in wait_for): either the
    // waiter sees the new count, or this sees the waiter and wakes it.
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
  }

  // True once the count reaches `count`; false if aborted first.
  bool wait_for(std::int64_t count) {
    auto ready = [&] {
      return count_.load(std::memory_order_acquire) >= count ||
             aborted_.load(std::memory_order_acquire);
    };
    // First a tight poll, without spin_until's sched_yield calls: the partner usually
    // arrives within microseconds, and a yield (a system call, ~1-2 us on this virtual
    // machine) in progress when it does delays the waiter by as much, which measured
    // 1.7 us per batch of the hidden split.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    for (unsigned i = 1; !ready(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if ((i & 255) == 0 && std::chrono::steady_clock::now() > deadline) break;
    }
    if (!ready() && !spin_until(ready)) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lock, [&] {
        return count_.load(std::memory_order_seq_cst) >= count ||
               aborted_.load(std::memory_order_seq_cst);
      });
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    }
    return count_.load(std::memory_order_acquire) >= count;
  }

  void abort() {
    aborted_.store(true, std::memory_order_seq_cst);
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }

  void reset() {
    count_.store(0);
    aborted_.store(false);
  }

 private:
  std::atomic<std::int64_t> count_{0};
  std::atomic<bool> aborted_{false};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

// Cache hints for the values the teams hand each other every batch (P_t, b2).
//
// A line the partner read last time sits in its cache, so the next write to it first
// has to take it back, one line at a time as the stores reach it: writing a 10 x 32 P_t
// measured ~1000 cycles more than on one thread. prefetch_for_write asks for ownership
// of all the lines ahead, while other work runs. PREFETCHW exists on every AMD CPU with
// 3DNow! prefetch and on Intel from Broadwell; elsewhere the hint is skipped.
// prefetch_for_read asks for every line of the partner's values at once, so their
// transfers overlap instead of following one another.
// Both are hints only: they never change a value.
namespace detail {
#if defined(__x86_64__) || defined(__i386__)
inline bool cpu_has_prefetchw() {
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(0x80000001u, &a, &b, &c, &d) != 0 && (c & bit_PRFCHW) != 0;
  }();
  return has;
}
__attribute__((target("prfchw"))) inline void prefetchw_lines(const char* p, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; i += 64) __builtin_prefetch(p + i, 1, 3);
}
#endif
}  // namespace detail

inline void prefetch_for_write(const void* p, std::size_t bytes) {
#if defined(__x86_64__) || defined(__i386__)
  if (detail::cpu_has_prefetchw()) detail::prefetchw_lines(static_cast<const char*>(p), bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

inline void prefetch_for_read(const void* p, std::size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (std::size_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 3);
}

// A column-major rows x cols buffer on whole cache lines of its own: 64-byte aligned,
// its size rounded up to a multiple of 64 bytes. Buffers that different threads write
// then never share a line, which the two cores would otherwise pass back and forth on
// every write (false sharing: it made the hidden split's batches up to 1.5x slower,
// depending on where the allocator happened to put them).
template <class T>
class LineBuffer {
 public:
  void resize(Index rows, Index cols) {
    const std::size_t bytes = static_cast<std::size_t>(std::max<Index>(rows * cols, 1)) * sizeof(T);
    T* p = static_cast<T*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    if (!p) throw std::bad_alloc();
    mem_.reset(p);
    rows_ = rows;
    cols_ = cols;
  }
  T* data() const { return mem_.get(); }
  Index rows() const { return rows_; }
  Index size() const { return rows_ * cols_; }
  // The first n columns, as a matrix.
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>> cols(Index n) const {
    return {mem_.get(), rows_, n};
  }
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> vec() const { return {mem_.get(), size()}; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> mem_;
  Index rows_ = 0, cols_ = 0;
};

}  // namespace densa
