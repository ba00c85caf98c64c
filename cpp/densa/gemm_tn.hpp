// densa's own kernel for one product shape: C = Aᵀ B in float32 with a narrow B, which is
// the dense layer's forward product z = W x on a minibatch (W's row-major bytes are the
// column-major Aᵀ, x's columns are B's; gemm.hpp). Pure C++: nothing here knows Python.
//
// Why: OpenBLAS computes this transposed-A case through its general path (it packs both
// operands) or, for small sizes, a kernel slower than its NN one. Measured on the
// development machine, single-threaded, medians: 64x32x64 (the digits network's and
// K2's forward) 3.0 against 3.5-4.2 us; 16x8x16 (W4) 81 against 250 ns; W3's 128-row
// slabs (128x64x784) 249 against 277 us. For wide B (N > 64) OpenBLAS is as fast or
// faster (0.92-0.97x here), so gemm.hpp calls this kernel only where it wins
// (use_gemm_tn below), a rule of the shape alone.
//
// How: A's rows are packed 16 at a time into a K x 16 panel (an 8x8 register transpose),
// then each 16 x 6 block of C is 12 AVX2 accumulators fed by two panel loads and six
// broadcasts of B per k. Every element of C is one fused multiply-add chain over k in
// ascending order, whatever block or panel it falls in, so the result does not depend
// on how gemm.hpp cuts C into slabs, and so not on the thread count.
//
// With AVX-512 (the x86-64-v4 module), whole pairs of panels go through 32 x 8 blocks
// instead: 16 accumulators of 16 floats, fed by two panel loads and eight broadcasts per
// k. AVX2's block is bound by its two FMA ports at 8 floats each; the wider one does
// twice the work per instruction, and with 16 FMAs to 10 loads per k it is still bound
// by the FMA ports, not the loads (a 16 x 12 block of one panel, 12 FMAs to 13 loads,
// gained only 1.1-1.25x). Measured single-threaded against the AVX2 blocks in one
// harness (medians): 32x32x64 (a digits team's hidden units) 1.47 -> 0.98 us, 64x32x64
// (K2) 2.94 -> 1.92 us, 128x64x784 (a slab of W3's first layer) 136 -> 103 us,
// 128x64x256 41 -> 30 us. The chain per element is the same, so the x86-64-v3 and v4
// modules compute the same bits (tests/test_gemm_tn_kernel.py compares them). A last
// single panel (M not a multiple of 32) keeps the AVX2 block.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "types.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DENSA_HAVE_GEMM_TN 1
#else
#define DENSA_HAVE_GEMM_TN 0
#endif
#if DENSA_HAVE_GEMM_TN && defined(__AVX512F__)
#define DENSA_GEMM_TN_AVX512 1
#else
#define DENSA_GEMM_TN_AVX512 0
#endif

namespace densa {

inline constexpr Index kTnPanelRows = 16;  // rows of C per packed panel: two 8-float vectors
inline constexpr Index kTnBlockCols = 6;   // columns of C per block: six broadcasts

// Whether gemm.hpp uses this kernel for a (single-threaded) float product of this shape.
// Measured against OpenBLAS: it wins for B of 8 to 64 columns (a minibatch), by 1.1-4x;
// wider B gains nothing (0.92-1.06x at N >= 128); narrower B or a long K with few
// columns cannot repay the packing (128x4x784: 0.48x, 128x8x784: 0.8x); and panels
// padded by more than 1/8 waste their share (10x32x64: 0.54x).
// Off only to compare with OpenBLAS (benchmarks/bench_gemm_tn.py); on by default. Atomic:
// Python may flip it while another thread trains with the GIL released.
inline std::atomic<bool>& gemm_tn_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

inline bool use_gemm_tn(Index M, Index N, Index K) {
  if (!DENSA_HAVE_GEMM_TN || !gemm_tn_enabled().load(std::memory_order_relaxed) ||
      M < kTnPanelRows || N < 8 || N > 64 || K < 1)
    return false;
  if (K > 256 && N < 16) return false;
  const Index padded = (M + kTnPanelRows - 1) / kTnPanelRows * kTnPanelRows;
  return 8 * (padded - M) <= padded;
}

#if DENSA_HAVE_GEMM_TN
namespace detail {

// The blocks of C's N columns, NB at a time, each as block(width, B + n·ldb, C + n·ldc)
// with its width as a std::integral_constant: whole blocks, then a last narrower one.
// The block kernels take their width as a template argument, so that their accumulators
// stay in registers.
template <int NB, class F, int... J>
void narrow_block(Index cols, const F& block, std::integer_sequence<int, J...>) {
  ((cols == J + 1 ? (block(std::integral_constant<int, J + 1>{}), 0) : 0), ...);
}
template <int NB, class F>
void for_column_blocks(Index N, const float* B, Index ldb, float* C, Index ldc, const F& block) {
  Index n = 0;
  for (; n + NB <= N; n += NB) block(std::integral_constant<int, NB>{}, B + n * ldb, C + n * ldc);
  const float* Bn = B + n * ldb;
  float* Cn = C + n * ldc;
  narrow_block<NB>(
      N - n, [&](auto width) { block(width, Bn, Cn); }, std::make_integer_sequence<int, NB - 1>{});
}

inline void transpose8x8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5,
                         __m256& r6, __m256& r7) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
  r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
  r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
  r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
  r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
  r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
  r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
  r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// P[k * 16 + i] = A[k + i * lda] for i < rows (the rows of C this panel computes), 0 for
// rows <= i < 16.
inline void pack_tn_panel(Index K, const float* A, Index lda, Index rows, float* P) {
  constexpr Index R = kTnPanelRows;
  Index k = 0;
  if (rows == R) {
    for (; k + 8 <= K; k += 8) {
      for (Index h = 0; h < R; h += 8) {
        const float* a = A + k + h * lda;
        __m256 r0 = _mm256_loadu_ps(a), r1 = _mm256_loadu_ps(a + lda);
        __m256 r2 = _mm256_loadu_ps(a + 2 * lda), r3 = _mm256_loadu_ps(a + 3 * lda);
        __m256 r4 = _mm256_loadu_ps(a + 4 * lda), r5 = _mm256_loadu_ps(a + 5 * lda);
        __m256 r6 = _mm256_loadu_ps(a + 6 * lda), r7 = _mm256_loadu_ps(a + 7 * lda);
        transpose8x8(r0, r1, r2, r3, r4, r5, r6, r7);
        float* p = P + k * R + h;
        _mm256_storeu_ps(p, r0);
        _mm256_storeu_ps(p + R, r1);
        _mm256_storeu_ps(p + 2 * R, r2);
        _mm256_storeu_ps(p + 3 * R, r3);
        _mm256_storeu_ps(p + 4 * R, r4);
        _mm256_storeu_ps(p + 5 * R, r5);
        _mm256_storeu_ps(p + 6 * R, r6);
        _mm256_storeu_ps(p + 7 * R, r7);
      }
    }
  }
  for (; k < K; ++k) {
    for (Index i = 0; i < rows; ++i) P[k * R + i] = A[k + i * lda];
    for (Index i = rows; i < R; ++i) P[k * R + i] = 0.0f;
  }
}

// c0 += a0 b, c1 += a1 b for column J of a block (when the block has that column), b
// the broadcast B[k, J]. Inlined into the k loop, the accumulators stay in registers.
template <int J, int NB>
__attribute__((always_inline)) inline void tn_column(const float* b, __m256 a0, __m256 a1,
                                                     __m256& c0, __m256& c1) {
  if constexpr (J < NB) {
    const __m256 bj = _mm256_broadcast_ss(b);
    c0 = _mm256_fmadd_ps(a0, bj, c0);
    c1 = _mm256_fmadd_ps(a1, bj, c1);
  }
}

// C[0..rows, 0..NB] = panelᵀ-rows times B's first NB columns. The accumulators are named
// variables, not an array: GCC kept an array of them in memory, at half the speed.
template <int NB>
void gemm_tn_block(Index K, const float* P, const float* B, Index ldb, float* C, Index ldc,
                   Index rows) {
  constexpr Index R = kTnPanelRows;
  const __m256 zero = _mm256_setzero_ps();
  __m256 c00 = zero, c01 = zero, c02 = zero, c03 = zero, c04 = zero, c05 = zero;
  __m256 c10 = zero, c11 = zero, c12 = zero, c13 = zero, c14 = zero, c15 = zero;
  // Column j of B (columns past NB are never read: they point at column 0).
  const auto col = [&](int j) { return B + (j < NB ? j : 0) * ldb; };
  const float *b0 = col(0), *b1 = col(1), *b2 = col(2), *b3 = col(3), *b4 = col(4), *b5 = col(5);
  for (Index k = 0; k < K; ++k) {
    const __m256 a0 = _mm256_loadu_ps(P + k * R);
    const __m256 a1 = _mm256_loadu_ps(P + k * R + 8);
    tn_column<0, NB>(b0 + k, a0, a1, c00, c10);
    tn_column<1, NB>(b1 + k, a0, a1, c01, c11);
    tn_column<2, NB>(b2 + k, a0, a1, c02, c12);
    tn_column<3, NB>(b3 + k, a0, a1, c03, c13);
    tn_column<4, NB>(b4 + k, a0, a1, c04, c14);
    tn_column<5, NB>(b5 + k, a0, a1, c05, c15);
  }
  const __m256 lo[6] = {c00, c01, c02, c03, c04, c05};
  const __m256 hi[6] = {c10, c11, c12, c13, c14, c15};
  for (int j = 0; j < NB; ++j) {
    float* c = C + j * ldc;
    if (rows == R) {
      _mm256_storeu_ps(c, lo[j]);
      _mm256_storeu_ps(c + 8, hi[j]);
    } else {
      alignas(32) float tmp[R];
      _mm256_store_ps(tmp, lo[j]);
      _mm256_store_ps(tmp + 8, hi[j]);
      for (Index i = 0; i < rows; ++i) c[i] = tmp[i];
    }
  }
}

#if DENSA_GEMM_TN_AVX512
inline constexpr Index kTn512BlockCols = 8;  // columns of C per 32-row block: eight broadcasts

// c0 += a0 b, c1 += a1 b for column J of a 32-row block (when it has that column).
template <int J, int NB>
__attribute__((always_inline)) inline void tn512_column(const float* b, __m512 a0, __m512 a1,
                                                        __m512& c0, __m512& c1) {
  if constexpr (J < NB) {
    const __m512 bj = _mm512_set1_ps(*b);
    c0 = _mm512_fmadd_ps(a0, bj, c0);
    c1 = _mm512_fmadd_ps(a1, bj, c1);
  }
}

// C[0..32, 0..NB] from two full panels: rows 0..16 from P0, 16..32 from P1. Named
// accumulators, as in gemm_tn_block.
template <int NB>
void gemm_tn_block512(Index K, const float* P0, const float* P1, const float* B, Index ldb,
                      float* C, Index ldc) {
  constexpr Index R = kTnPanelRows;
  const __m512 zero = _mm512_setzero_ps();
  __m512 c00 = zero, c01 = zero, c02 = zero, c03 = zero, c04 = zero, c05 = zero, c06 = zero,
         c07 = zero;
  __m512 c10 = zero, c11 = zero, c12 = zero, c13 = zero, c14 = zero, c15 = zero, c16 = zero,
         c17 = zero;
  const auto col = [&](int j) { return B + (j < NB ? j : 0) * ldb; };
  const float *b0 = col(0), *b1 = col(1), *b2 = col(2), *b3 = col(3), *b4 = col(4), *b5 = col(5),
              *b6 = col(6), *b7 = col(7);
  for (Index k = 0; k < K; ++k) {
    const __m512 a0 = _mm512_loadu_ps(P0 + k * R);
    const __m512 a1 = _mm512_loadu_ps(P1 + k * R);
    tn512_column<0, NB>(b0 + k, a0, a1, c00, c10);
    tn512_column<1, NB>(b1 + k, a0, a1, c01, c11);
    tn512_column<2, NB>(b2 + k, a0, a1, c02, c12);
    tn512_column<3, NB>(b3 + k, a0, a1, c03, c13);
    tn512_column<4, NB>(b4 + k, a0, a1, c04, c14);
    tn512_column<5, NB>(b5 + k, a0, a1, c05, c15);
    tn512_column<6, NB>(b6 + k, a0, a1, c06, c16);
    tn512_column<7, NB>(b7 + k, a0, a1, c07, c17);
  }
  const __m512 lo[8] = {c00, c01, c02, c03, c04, c05, c06, c07};
  const __m512 hi[8] = {c10, c11, c12, c13, c14, c15, c16, c17};
  for (int j = 0; j < NB; ++j) {
    _mm512_storeu_ps(C + j * ldc, lo[j]);
    _mm512_storeu_ps(C + j * ldc + R, hi[j]);
  }
}

// C (32 x N) from two packed full panels, in 32 x 8 blocks and one narrower last block.
inline void gemm_tn_pair(Index N, Index K, const float* P0, const float* P1, const float* B,
                         Index ldb, float* C, Index ldc) {
  for_column_blocks<kTn512BlockCols>(N, B, ldb, C, ldc, [&](auto nb, const float* Bn, float* Cn) {
    gemm_tn_block512<decltype(nb)::value>(K, P0, P1, Bn, ldb, Cn, ldc);
  });
}
#endif

}  // namespace detail

// C (M x N, column-major, ldc) = Aᵀ B, where A is K x M (lda) and B is K x N (ldb), both
// column-major; C is overwritten. The panel buffer is per thread and kept between calls
// (16 K floats, 32 K with AVX-512), so a training run allocates it once.
inline void gemm_tn(Index M, Index N, Index K, const float* A, Index lda, const float* B, Index ldb,
                    float* C, Index ldc) {
  constexpr Index R = kTnPanelRows, NB = kTnBlockCols;
  constexpr Index panels = DENSA_GEMM_TN_AVX512 ? 2 : 1;
  thread_local std::vector<float> panel;
  if (static_cast<Index>(panel.size()) < panels * K * R)
    panel.resize(static_cast<size_t>(panels * K * R));
  float* P = panel.data();
  Index m0 = 0;
#if DENSA_GEMM_TN_AVX512
  for (; m0 + 2 * R <= M; m0 += 2 * R) {  // whole pairs of panels
    float* P1 = P + K * R;
    detail::pack_tn_panel(K, A + m0 * lda, lda, R, P);
    detail::pack_tn_panel(K, A + (m0 + R) * lda, lda, R, P1);
    detail::gemm_tn_pair(N, K, P, P1, B, ldb, C + m0, ldc);
  }
#endif
  for (; m0 < M; m0 += R) {
    const Index rows = std::min(R, M - m0);
    detail::pack_tn_panel(K, A + m0 * lda, lda, rows, P);
    detail::for_column_blocks<NB>(N, B, ldb, C + m0, ldc, [&](auto nb, const float* Bn, float* Cn) {
      detail::gemm_tn_block<decltype(nb)::value>(K, P, Bn, ldb, Cn, ldc, rows);
    });
  }
}
#endif

}  // namespace densa
