// The backward step into a relu hidden layer from the layer above, in one pass: for a
// minibatch of bs samples,
//   dy = A Bᵀ  (A: the m x o slice of W2ᵀ, B: dz2 with a row per sample, bs x o),
//   dz = relu'(z) ⊙ dy,   db = Σ_samples dz,
// float32 with AVX2 + FMA. Pure C++: nothing here knows Python.
//
// Why: the hidden split (hidden_split.hpp) computed dy as a 32 x 32 x 10 product through
// OpenBLAS, then dz in a pass over dy and z, then db in a pass over dz: three trips
// through the same 4 KB for a product of 10 k multiply-adds. Here each sample's dy stays
// in registers until it is masked, stored as dz and added to db. Two samples share each
// load of A. Measured on the development machine, a digits fit in the C++ harness:
// see docs/performance.md.
//
// What it computes, element for element: dy[r, c] is a fused multiply-add chain over
// i = 0 .. o-1 in ascending order, starting from A[r, 0] · B[c, 0]; dz = f'(z) · dy with
// f'(z) = 1 if z > 0 else 0 (NaN: 0), as activation_backward's relu multiplies; db[r]
// sums dz[r, c] over c in ascending order, starting from dz[r, 0]. The same code runs
// whichever thread computes a team's slice, so the bits do not depend on the thread
// count. (They differ in rounding from OpenBLAS's product, whose summation order is its
// own.)
#pragma once

#include <atomic>
#include <type_traits>

#include "activation.hpp"
#include "types.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DENSA_HAVE_RELU_BACKWARD 1
#else
#define DENSA_HAVE_RELU_BACKWARD 0
#endif

namespace densa {

// Off only to compare with the three-pass path (tests, benchmarks); on by default.
inline std::atomic<bool>& relu_backward_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

#if DENSA_HAVE_RELU_BACKWARD
namespace detail {

// MV vectors of 8 rows: m = 8 · MV. ld: the leading dimension of z and dz.
template <int MV>
void relu_backward_avx2(Index bs, Index o, const float* A, const float* B, const float* z,
                        float* dz, Index ld, float* db) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 zero = _mm256_setzero_ps();
  __m256 sum[MV];
  // dz[:, c] = f'(z[:, c]) · acc, added to the running db (set by the first sample).
  const auto finish = [&](const __m256* acc, Index c) {
    for (int v = 0; v < MV; ++v) {
      const __m256 zz = _mm256_loadu_ps(z + c * ld + 8 * v);
      const __m256 df = _mm256_and_ps(_mm256_cmp_ps(zz, zero, _CMP_GT_OQ), one);
      const __m256 d = _mm256_mul_ps(df, acc[v]);
      _mm256_storeu_ps(dz + c * ld + 8 * v, d);
      sum[v] = c == 0 ? d : _mm256_add_ps(sum[v], d);
    }
  };
  Index c = 0;
  for (; c + 2 <= bs; c += 2) {
    __m256 acc0[MV], acc1[MV];
    __m256 b0 = _mm256_broadcast_ss(B + c), b1 = _mm256_broadcast_ss(B + c + 1);
    for (int v = 0; v < MV; ++v) {
      const __m256 a = _mm256_loadu_ps(A + 8 * v);
      acc0[v] = _mm256_mul_ps(a, b0);
      acc1[v] = _mm256_mul_ps(a, b1);
    }
    for (Index i = 1; i < o; ++i) {
      b0 = _mm256_broadcast_ss(B + i * bs + c);
      b1 = _mm256_broadcast_ss(B + i * bs + c + 1);
      for (int v = 0; v < MV; ++v) {
        const __m256 a = _mm256_loadu_ps(A + i * 8 * MV + 8 * v);
        acc0[v] = _mm256_fmadd_ps(a, b0, acc0[v]);
        acc1[v] = _mm256_fmadd_ps(a, b1, acc1[v]);
      }
    }
    finish(acc0, c);
    finish(acc1, c + 1);
  }
  if (c < bs) {  // an odd last sample
    __m256 acc[MV];
    __m256 b = _mm256_broadcast_ss(B + c);
    for (int v = 0; v < MV; ++v) acc[v] = _mm256_mul_ps(_mm256_loadu_ps(A + 8 * v), b);
    for (Index i = 1; i < o; ++i) {
      b = _mm256_broadcast_ss(B + i * bs + c);
      for (int v = 0; v < MV; ++v) {
        acc[v] = _mm256_fmadd_ps(_mm256_loadu_ps(A + i * 8 * MV + 8 * v), b, acc[v]);
      }
    }
    finish(acc, c);
  }
  for (int v = 0; v < MV; ++v) _mm256_storeu_ps(db + 8 * v, sum[v]);
}

}  // namespace detail
#endif

// The fused step above where it applies: float32, relu, m a multiple of 8 up to 32 (A
// then fits beside the accumulators in registers), o ≥ 1, bs ≥ 1. A is m x o
// column-major (lda = m), B is bs x o column-major (ldb = bs), z and dz m x bs
// column-major (ld ≥ m), db holds m values. Returns false, having written nothing,
// where it does not apply: the caller then takes the general path.
template <class T>
bool relu_backward_fused(Activation activation, Index m, Index bs, Index o, const T* A,
                         const T* B, const T* z, T* dz, Index ld, T* db) {
#if DENSA_HAVE_RELU_BACKWARD
  if constexpr (std::is_same_v<T, float>) {
    if (activation != Activation::relu || bs < 1 || o < 1 || m % 8 != 0 || ld < m ||
        !relu_backward_enabled().load(std::memory_order_relaxed)) {
      return false;
    }
    switch (m / 8) {
      case 1: detail::relu_backward_avx2<1>(bs, o, A, B, z, dz, ld, db); return true;
      case 2: detail::relu_backward_avx2<2>(bs, o, A, B, z, dz, ld, db); return true;
      case 3: detail::relu_backward_avx2<3>(bs, o, A, B, z, dz, ld, db); return true;
      case 4: detail::relu_backward_avx2<4>(bs, o, A, B, z, dz, ld, db); return true;
      default: return false;
    }
  }
#endif
  (void)activation, (void)m, (void)bs, (void)o, (void)A, (void)B, (void)z, (void)dz, (void)ld,
      (void)db;
  return false;
}

}  // namespace densa
