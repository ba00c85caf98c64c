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
// MXCSR, so a worker computes a slab with the result bits (rounding, FTZ, DAZ) of the
// thread that handed it over, and with exceptions masked.
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
// MXCSR's bits that decide results: rounding (bits 13-14), FTZ (bit 15) and DAZ (bit 6).
// Its exception masks (bits 7-12) decide only whether an invalid, dividing or overflowing
// operation traps (SIGFPE) instead of giving NaN or inf; its low six bits are sticky
// status flags.
inline constexpr unsigned kResultBits = 0xE040u;
inline constexpr unsigned kExceptionMasks = 0x1F80u;
inline constexpr unsigned kFlushSubnormalBits = 0x8040u;  // FTZ and DAZ

// The bits of the calling thread's mode that decide results.
inline unsigned float_mode() { return _mm_getcsr() & kResultBits; }
#else
// Elsewhere the mode is the platform's default and is never changed: subnormals are
// kept (slower where they occur, and equal to the reference).
inline constexpr unsigned kFlushSubnormalBits = 0u;
inline unsigned float_mode() { return 0u; }
#endif

// Computes with the result bits `mode` and every floating-point exception masked until
// the end of the scope, then puts back the thread's whole register as it was (status
// flags included), also when an exception leaves the scope. Masked, because densa
// detects NaN and inf itself (divergence, refused inputs): a thread whose owner enabled
// traps (feenableexcept) would otherwise die of SIGFPE, the interpreter with it, at the
// first overflow, and on a pool worker no handler could turn that into an error.
class ScopedFloatMode {
 public:
  explicit ScopedFloatMode(unsigned mode) {
#if DENSA_HAS_FLOAT_MODE
    saved_ = _mm_getcsr();
    const unsigned want = (saved_ & ~kResultBits) | mode | kExceptionMasks;
    if (want != saved_) _mm_setcsr(want);  // a write costs more than a read
#else
    (void)mode;
#endif
  }
  ScopedFloatMode(const ScopedFloatMode&) = delete;
  ScopedFloatMode& operator=(const ScopedFloatMode&) = delete;
  ~ScopedFloatMode() {
#if DENSA_HAS_FLOAT_MODE
    if (_mm_getcsr() != saved_) _mm_setcsr(saved_);
#endif
  }

 private:
  unsigned saved_ = 0;
};

// Off only to measure what the flush saves (benchmarks/bench_subnormals.py) and in
// tests; on by default. Read at the start of each training call. Atomic: Python may flip
// it while another thread trains.
inline std::atomic<bool>& flush_subnormals_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// One training call's mode: the caller's rounding, subnormals flushed to zero (FTZ and
// DAZ), exceptions masked (ScopedFloatMode says why).
class ScopedTrainingMode : public ScopedFloatMode {
 public:
  ScopedTrainingMode()
      : ScopedFloatMode(flush_subnormals_enabled().load(std::memory_order_relaxed)
                            ? float_mode() | kFlushSubnormalBits
                            : float_mode()) {}
};

// Whether this build can flush subnormals (x86-64); show_config reports it.
inline constexpr bool kFlushesSubnormals = DENSA_HAS_FLOAT_MODE != 0;

}  // namespace densa
