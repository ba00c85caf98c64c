// The floating-point mode a thread computes in (on x86-64, the SSE/AVX control register
// MXCSR: rounding, and whether subnormal numbers are flushed to zero), and two scoped
// changes of it. Pure C++; nothing here knows Python.
//
// Why the trainer flushes subnormals. A weight whose gradient stays exactly zero (an
// input feature that is always 0, such as the border pixels of scikit-learn's digits,
// or a ReLU unit that never fires) keeps a momentum velocity that only decays: v <- μ·v.
// After some 800 steps it falls below float32's smallest normal number (1.2e-38), and it
// never reaches zero: μ·v of a few subnormal ulp rounds back to itself. Every later
// step then multiplies subnormals, which the CPU handles in a slow assist: a digits
// epoch grew from 0.23 to 0.37 ms once 6% of the first layer's velocities were
// subnormal (benchmarks/bench_subnormals.py; docs/native-builds.md, "Subnormal
// numbers"). In flush-to-zero mode (FTZ: a subnormal result is 0; DAZ: a subnormal
// operand reads as 0) those velocities become 0.
// A value that small is below the last bit of any weight it is subtracted from, so the
// parameters match the reference as before; only values under the smallest normal
// number differ from it.
//
// Why the pool copies the caller's mode (parallel.hpp). A product cut into slabs must
// give the same bits whichever thread computes which slab. Each thread has its own
// MXCSR, so a worker computes a slab in the mode of the thread that handed it over.
#pragma once

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define DENSA_HAS_FLOAT_MODE 1
#else
#define DENSA_HAS_FLOAT_MODE 0
#endif

namespace densa {

#if DENSA_HAS_FLOAT_MODE
// MXCSR's control bits (rounding, FTZ, DAZ, exception masks); its low six bits are sticky
// status flags, which belong to the thread that raised them and are never copied.
inline constexpr unsigned kFloatControlBits = 0xFFC0u;
inline constexpr unsigned kFlushSubnormalBits = 0x8040u;  // FTZ (bit 15) and DAZ (bit 6)

inline unsigned float_mode() { return _mm_getcsr() & kFloatControlBits; }

// Sets the control bits to `mode`, leaving the status flags; writes only on a change
// (a write of MXCSR costs more than a read).
inline void set_float_mode(unsigned mode) {
  const unsigned now = _mm_getcsr();
  if ((now & kFloatControlBits) != mode) _mm_setcsr((now & ~kFloatControlBits) | mode);
}
#else
// Elsewhere the mode is the platform's default and is never changed: subnormals are
// kept (slower where they occur, and equal to the reference).
inline constexpr unsigned kFlushSubnormalBits = 0u;
inline unsigned float_mode() { return 0u; }
inline void set_float_mode(unsigned) {}
#endif

// Computes in `mode` until the end of the scope, then puts back the thread's own mode,
// also when an exception leaves the scope.
class ScopedFloatMode {
 public:
  explicit ScopedFloatMode(unsigned mode) : saved_(float_mode()) { set_float_mode(mode); }
  ScopedFloatMode(const ScopedFloatMode&) = delete;
  ScopedFloatMode& operator=(const ScopedFloatMode&) = delete;
  ~ScopedFloatMode() { set_float_mode(saved_); }

 private:
  unsigned saved_;
};

// Off only to measure what the flush saves (benchmarks/bench_subnormals.py) and in
// tests; on by default. Read at the start of each training call. Atomic: Python may flip
// it while another thread trains.
inline std::atomic<bool>& flush_subnormals_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// The caller's mode with subnormals flushed to zero (FTZ and DAZ), for one training call.
class ScopedFlushSubnormals : public ScopedFloatMode {
 public:
  ScopedFlushSubnormals()
      : ScopedFloatMode(flush_subnormals_enabled().load(std::memory_order_relaxed)
                            ? float_mode() | kFlushSubnormalBits
                            : float_mode()) {}
};

// Whether this build can flush subnormals (x86-64); show_config reports it.
inline constexpr bool kFlushesSubnormals = DENSA_HAS_FLOAT_MODE != 0;

}  // namespace densa
