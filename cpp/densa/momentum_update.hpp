// A layer's weight step under plain momentum SGD, in one pass of densa's own kernel:
//   v ← μ v + dz · xᵀ        (the dW product, never stored: docs/backprop.md's dW)
//   W ← W − lr v
// for float32 minibatches in modules built with AVX2 + FMA (x86-64-v3, and v4 where it is
// built). Pure C++: nothing here knows Python.
//
// Why: the trainer otherwise forms v with OpenBLAS (the velocity as the product's C,
// prescaled by μ so that OpenBLAS skips its scaling pass) and then makes a separate pass
// over W and v for the update. On W3's first layer (784 x 256, batch 64) that pass is
// ~12% of the product's time and one more hand-over between the pool's threads per layer;
// here the update rides on the product's stores, while the tile's accumulators are still in
// registers. Measured single-threaded on one of W3's two slabs (128 of W's rows), medians
// of 400: OpenBLAS's product 326k ticks + the update pass 43k; this kernel 338-350k.
//
// How: dz's rows for a slab are packed, 6 at a time, into K x 6 panels. Each 16 x 6 block
// of dWᵀ is then 12 AVX2 accumulators fed by two loads of 16 of x's rows (the layer's
// inputs) and six broadcasts per sample, as in gemm_tn.hpp. The loads read x where it is
// (x_direct says when); the last 16 inputs of a row, when fewer, are copied into a
// K x 16 sliver with zeros in the missing lanes. Every element of dW is one fused
// multiply-add chain over the samples in ascending order, from zero, whatever block it
// falls in (the last 16 inputs of a row are masked lanes of the same chain); then
// v = μ v + dW and W = W − lr v each round once, as sgd_apply_velocity (optimizer.hpp)
// rounds them. So the result depends on the shape alone, never on how the rows are cut
// between threads. (On the shapes measured it was also bit for bit what OpenBLAS and the
// separate pass computed; nothing relies on that.)
#pragma once

#include <algorithm>
#include <atomic>
#include <vector>

#include "gemm.hpp"
#include "types.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DENSA_HAVE_MOMENTUM_KERNEL 1
#else
#define DENSA_HAVE_MOMENTUM_KERNEL 0
#endif

namespace densa {

// Off only to compare with the OpenBLAS path (tests, benchmarks); on by default. Read
// when a trainer is built. Atomic: Python may flip it while another thread trains.
inline std::atomic<bool>& momentum_kernel_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// Whether a float32 trainer with fused momentum and minibatches of up to max_batch samples
// updates the weights of an n_out x n_in layer through this kernel. A rule of the shapes
// alone, so that every batch of a trainer, the last short one included, takes the same
// path. Measured against OpenBLAS and the separate pass, single-threaded, per slab of
// rows (ratios of medians; below 1 the kernel wins):
//   - W of 64 Ki entries and more, at 16 to 128 samples: 0.90-0.96 (784 x 128 at 16, 32,
//     64, 128 samples; 784 x 150, 300 x 392, 784 x 256, 784 x 512, 2000 x 250 at 64);
//   - smaller layers: 0.99-1.5 (256 x 64, 64 x 64, 128 x 10): the kernel's packing costs
//     about what the update pass does there, or more;
//   - 256 samples and more: 1.00-1.08 (OpenBLAS's blocking of a long K is better);
//   - rows a multiple of 512 floats apart: 1.06-1.37 (512 x 128, 1024 x 64, 1024 x 512):
//     a block's six rows of W and v then share the first-level cache's sets.
inline bool use_momentum_kernel(Index n_out, Index n_in, Index max_batch) {
  return DENSA_HAVE_MOMENTUM_KERNEL && momentum_kernel_enabled().load(std::memory_order_relaxed) &&
         max_batch >= 1 && max_batch <= 128 && n_in >= 1 && n_out >= 1 &&
         n_out >= (65536 + n_in - 1) / n_in &&  // n_out x n_in >= 64 Ki, without overflow
         n_in % 512 != 0;
}

#if DENSA_HAVE_MOMENTUM_KERNEL
namespace detail {

inline constexpr Index kMomTileRows = 6;   // W's rows per block: six broadcasts of dz
inline constexpr Index kMomTileCols = 16;  // W's columns per block: two 8-float vectors
// W's rows per pass over x: 3072 / K rows (rounded down to whole blocks, 6 to 192), so
// that their dz panels take at most 12 KB (48 rows at 64 samples, 24 at 128; fewer
// bytes below 16 samples, where 192 rows caps them), half the first-level cache with
// the 4 KB of x a block reads at 64 samples (8 KB at 128).
// This virtual machine's vCPUs have slow stretches (presumably sharing their core, and
// its first-level cache, with another guest): on W3 in a C++ harness, alternating with
// the BLAS path, 48-row chunks ran at 0.91-0.96 of its time per batch in slow and quiet
// stretches alike, 128-row chunks (33 KB of panels) at 0.95-0.99 in quiet ones but
// 1.09-1.11 in slow ones.
inline Index mom_chunk_rows(Index K) {
  const Index rows = 3072 / std::max<Index>(K, 1) / kMomTileRows * kMomTileRows;
  return std::clamp<Index>(rows, kMomTileRows, 192);
}

// c0 += a0 dz[C], c1 += a1 dz[C] for row C of a block (when the block has that row).
template <int C, int NB>
__attribute__((always_inline)) inline void mom_row(const float* dz, __m256 a0, __m256 a1,
                                                   __m256& c0, __m256& c1) {
  if constexpr (C < NB) {
    const __m256 b = _mm256_broadcast_ss(dz + C);
    c0 = _mm256_fmadd_ps(a0, b, c0);
    c1 = _mm256_fmadd_ps(a1, b, c1);
  }
}

// Eight floats at p, only the lanes of m when MASK (the last columns of a row: nothing
// past its end is read or written).
template <bool MASK>
__attribute__((always_inline)) inline __m256 load8(const float* p, __m256i m) {
  if constexpr (MASK) {
    return _mm256_maskload_ps(p, m);
  } else {
    (void)m;
    return _mm256_loadu_ps(p);
  }
}

template <bool MASK>
__attribute__((always_inline)) inline void store8(float* p, __m256i m, __m256 a) {
  if constexpr (MASK) {
    _mm256_maskstore_ps(p, m, a);
  } else {
    (void)m;
    _mm256_storeu_ps(p, a);
  }
}

// Row C of a block: v = μ v + dW, W = W − lr v on 16 columns (masked lanes when MASK).
template <int C, int NB, bool MASK>
__attribute__((always_inline)) inline void mom_store(float* W, float* V, Index ldw, __m256i m0,
                                                     __m256i m1, __m256 lr, __m256 mu, __m256 g0,
                                                     __m256 g1) {
  if constexpr (C < NB) {
    float* w = W + C * ldw;
    float* v = V + C * ldw;
    // Two roundings each, no fused multiply-add: sgd_apply_velocity's bits.
    const __m256 v0 = _mm256_add_ps(_mm256_mul_ps(mu, load8<MASK>(v, m0)), g0);
    const __m256 v1 = _mm256_add_ps(_mm256_mul_ps(mu, load8<MASK>(v + 8, m1)), g1);
    store8<MASK>(v, m0, v0);
    store8<MASK>(v + 8, m1, v1);
    store8<MASK>(w, m0, _mm256_sub_ps(load8<MASK>(w, m0), _mm256_mul_ps(lr, v0)));
    store8<MASK>(w + 8, m1, _mm256_sub_ps(load8<MASK>(w + 8, m1), _mm256_mul_ps(lr, v1)));
  }
}

// One block: NB rows of W and v (row stride ldw) by 16 columns, from a K x 16 block of x
// (S: 16 floats per sample, lds floats apart) and a K x 6 panel of dz (P, 6 floats per
// sample). The accumulators are named variables, not an array (gemm_tn.hpp says why).
template <int NB, bool MASK>
void mom_block(Index K, const float* S, Index lds, const float* P, float* W, float* V, Index ldw,
               __m256i m0, __m256i m1, __m256 lr, __m256 mu) {
  // The block's rows of W and v are read only at the end, after K samples: ask for them
  // now (from the second-level cache: a slab's W and v are 0.8 MB on W3's first layer).
  for (int c = 0; c < NB; ++c) {
    _mm_prefetch(reinterpret_cast<const char*>(W + c * ldw), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(V + c * ldw), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(W + c * ldw + 15), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(V + c * ldw + 15), _MM_HINT_T0);
  }
  const __m256 zero = _mm256_setzero_ps();
  __m256 c00 = zero, c01 = zero, c02 = zero, c03 = zero, c04 = zero, c05 = zero;
  __m256 c10 = zero, c11 = zero, c12 = zero, c13 = zero, c14 = zero, c15 = zero;
  for (Index k = 0; k < K; ++k) {
    const __m256 a0 = _mm256_loadu_ps(S + k * lds);
    const __m256 a1 = _mm256_loadu_ps(S + k * lds + 8);
    const float* dz = P + k * kMomTileRows;
    mom_row<0, NB>(dz, a0, a1, c00, c10);
    mom_row<1, NB>(dz, a0, a1, c01, c11);
    mom_row<2, NB>(dz, a0, a1, c02, c12);
    mom_row<3, NB>(dz, a0, a1, c03, c13);
    mom_row<4, NB>(dz, a0, a1, c04, c14);
    mom_row<5, NB>(dz, a0, a1, c05, c15);
  }
  mom_store<0, NB, MASK>(W, V, ldw, m0, m1, lr, mu, c00, c10);
  mom_store<1, NB, MASK>(W, V, ldw, m0, m1, lr, mu, c01, c11);
  mom_store<2, NB, MASK>(W, V, ldw, m0, m1, lr, mu, c02, c12);
  mom_store<3, NB, MASK>(W, V, ldw, m0, m1, lr, mu, c03, c13);
  mom_store<4, NB, MASK>(W, V, ldw, m0, m1, lr, mu, c04, c14);
  mom_store<5, NB, MASK>(W, V, ldw, m0, m1, lr, mu, c05, c15);
}

template <bool MASK>
void mom_block_rows(Index nb, Index K, const float* S, Index lds, const float* P, float* W,
                    float* V, Index ldw, __m256i m0, __m256i m1, __m256 lr, __m256 mu) {
  switch (nb) {
    case 6:
      mom_block<6, MASK>(K, S, lds, P, W, V, ldw, m0, m1, lr, mu);
      break;
    case 5:
      mom_block<5, MASK>(K, S, lds, P, W, V, ldw, m0, m1, lr, mu);
      break;
    case 4:
      mom_block<4, MASK>(K, S, lds, P, W, V, ldw, m0, m1, lr, mu);
      break;
    case 3:
      mom_block<3, MASK>(K, S, lds, P, W, V, ldw, m0, m1, lr, mu);
      break;
    case 2:
      mom_block<2, MASK>(K, S, lds, P, W, V, ldw, m0, m1, lr, mu);
      break;
    case 1:
      mom_block<1, MASK>(K, S, lds, P, W, V, ldw, m0, m1, lr, mu);
      break;
    default:
      break;
  }
}

// Rows per block from row `left` rows before the end: 6, except that the last 7 or 8 rows
// go as 4 + 3 or 4 + 4 (a block of 1 or 2 rows has too few accumulators to hide the
// multiply-add latency and runs at a quarter or half speed).
inline Index mom_block_rows_at(Index left) {
  return left == 7 || left == 8 ? 4 : std::min(kMomTileRows, left);
}

// Whether the kernel reads x's 16 inputs per sample where they are, ldx floats apart,
// instead of copying them into a contiguous sliver first: each chunk of rows made that
// copy of all of x (200 KB on W3's first layer). The loads then hit the same first-level
// cache lines a sliver's would, after the block's first sample. W3, C++ harness, 150
// interleaved runs: 402 -> 394 us per batch in quiet stretches, 690 -> 640 in slow ones
// (medians). Not when x's columns lie a multiple of 512 bytes apart: the K lines of a
// block would then share a few of the first-level cache's sets and evict one another.
inline bool x_direct(Index ldx) { return ldx % 128 != 0; }

// Rows [lo, hi) of W (n_out x n_in, row-major) and v, one chunk (mom_chunk_rows): v = μ v +
// dz[lo:hi] xᵀ, W −= lr v. x is n_in x K column-major (ldx), dz n_out x K column-major
// (ldz). panels holds room for (hi - lo) / 6 + 1 panels of K x 6 floats, sliver for
// K x 16 floats.
inline void momentum_update_chunk(Index n_in, Index lo, Index hi, Index K, const float* x,
                                  Index ldx, const float* dz, Index ldz, float* W, float* V,
                                  __m256 lr, __m256 mu, float* panels, float* sliver) {
  constexpr Index R = kMomTileRows, S16 = kMomTileCols;
  // dz's rows, block by block: P[k * 6 + c] = dz[row + c, k] (zero past the block's rows).
  Index n_blocks = 0;
  for (Index row = lo; row < hi; ++n_blocks) {
    const Index nb = mom_block_rows_at(hi - row);
    float* P = panels + n_blocks * R * K;
    for (Index k = 0; k < K; ++k)
      for (Index c = 0; c < R; ++c) P[k * R + c] = c < nb ? dz[k * ldz + row + c] : 0.0f;
    row += nb;
  }
  float* S = sliver;
  const bool read_x = x_direct(ldx);  // x's full tiles read in place (x_direct says when)
  for (Index j0 = 0; j0 < n_in; j0 += S16) {
    const Index width = std::min(S16, n_in - j0);
    alignas(32) int lanes[S16];
    for (Index l = 0; l < S16; ++l) lanes[l] = l < width ? -1 : 0;
    const __m256i m0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
    const __m256i m1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes + 8));
    // x's inputs j0 .. j0 + 16 for every sample: where they are, or copied contiguous
    // (zero in masked lanes).
    const bool full = width == S16;
    const bool direct = full && read_x;
    const float* Sx = direct ? x + j0 : S;
    const Index lds = direct ? ldx : S16;
    if (!direct) {
      for (Index k = 0; k < K; ++k) {
        const float* xk = x + k * ldx + j0;
        _mm256_storeu_ps(S + k * S16, full ? load8<false>(xk, m0) : load8<true>(xk, m0));
        _mm256_storeu_ps(S + k * S16 + 8,
                         full ? load8<false>(xk + 8, m1) : load8<true>(xk + 8, m1));
      }
    }
    Index row = lo;
    for (Index bi = 0; bi < n_blocks; ++bi) {
      const Index nb = mom_block_rows_at(hi - row);
      const float* P = panels + bi * R * K;
      float* w = W + row * n_in + j0;
      float* v = V + row * n_in + j0;
      if (full) {
        mom_block_rows<false>(nb, K, Sx, lds, P, w, v, n_in, m0, m1, lr, mu);
      } else {
        mom_block_rows<true>(nb, K, Sx, lds, P, w, v, n_in, m0, m1, lr, mu);
      }
      row += nb;
    }
  }
}

// Rows [lo, hi), a chunk at a time, with a slab's scratch (MomentumScratch).
inline void momentum_update_rows(Index n_in, Index lo, Index hi, Index K, const float* x, Index ldx,
                                 const float* dz, Index ldz, float* W, float* V, float lr, float mu,
                                 float* panels, float* sliver) {
  const __m256 lr8 = _mm256_set1_ps(lr), mu8 = _mm256_set1_ps(mu);
  const Index chunk = mom_chunk_rows(K);
  for (Index c = lo; c < hi; c += chunk) {
    momentum_update_chunk(n_in, c, std::min(hi, c + chunk), K, x, ldx, dz, ldz, W, V, lr8, mu8,
                          panels, sliver);
  }
}

}  // namespace detail

// The kernel's packing buffers, one set per slab a product can be cut into, sized once
// for minibatches of up to max_batch samples: the trainer owns one and allocates nothing
// per batch, so that no batch can fail half-way through its update for want of memory.
class MomentumScratch {
 public:
  explicit MomentumScratch(Index max_batch = 0) { reserve(max_batch, slab_policy().max_slabs); }

  // Room for `slabs` slabs at up to max_batch samples (grows only).
  void reserve(Index max_batch, std::int64_t slabs) {
    max_batch_ = std::max(max_batch_, max_batch);
    const size_t n = static_cast<size_t>(std::max<std::int64_t>(slabs, 1));
    if (panels_.size() < n) {
      panels_.resize(n);
      slivers_.resize(n);
    }
    for (size_t i = 0; i < panels_.size(); ++i) {  // every slab's, for the new max_batch
      panels_[i].resize(panel_floats(max_batch_));
      slivers_[i].resize(static_cast<size_t>(detail::kMomTileCols * max_batch_));
    }
  }

  Index max_batch() const { return max_batch_; }
  std::int64_t slabs() const { return static_cast<std::int64_t>(panels_.size()); }
  float* panels(std::int64_t slab) { return panels_[static_cast<size_t>(slab)].data(); }
  float* sliver(std::int64_t slab) { return slivers_[static_cast<size_t>(slab)].data(); }

 private:
  // A chunk's panels at K samples: chunk / 6 blocks of K x 6 floats at most (the 4 + 3
  // and 4 + 4 of the last 7 or 8 rows never add a block: 7 or 8 rows left means at least
  // one block fewer of 6 before them); one more block is kept as a margin.
  static size_t panel_floats(Index max_batch) {
    size_t most = 0;
    for (Index K = 1; K <= max_batch; ++K) {
      const Index blocks = detail::mom_chunk_rows(K) / detail::kMomTileRows + 1;
      most = std::max(most, static_cast<size_t>(blocks * detail::kMomTileRows * K));
    }
    return most;
  }

  Index max_batch_ = 0;
  std::vector<std::vector<float>> panels_, slivers_;
};

// The whole layer: v = μ v + dz xᵀ, W −= lr v, for W (n_out x n_in, row-major) and its
// velocity v, given the layer's input x (n_in x K) and dz (n_out x K), both column-major.
// W's rows are cut into slabs as gemm.hpp cuts the dW product (plan_slabs, a function of
// the shape alone), so each thread updates the rows its forward product read.
inline void momentum_update(Index n_out, Index n_in, Index K, const float* x, Index ldx,
                            const float* dz, Index ldz, float* W, float* V, float lr, float mu,
                            MomentumScratch& scratch) {
  if (n_out == 0 || n_in == 0) return;
  const SlabPlan plan = plan_slabs(n_in, n_out, K, Split::cols);
  // Grows only if the slab policy changed since the last reserve (a tuning hook), or K
  // exceeds max_batch (never from the trainer, which reserves before each run).
  if (plan.count > scratch.slabs() || K > scratch.max_batch()) scratch.reserve(K, plan.count);
  if (plan.count == 1) {
    detail::momentum_update_rows(n_in, 0, n_out, K, x, ldx, dz, ldz, W, V, lr, mu,
                                 scratch.panels(0), scratch.sliver(0));
    return;
  }
  const std::int64_t align = slab_policy().align;
  thread_pool().run(plan.count, [&](std::int64_t i) {
    const Index lo = plan.bound(i, align), hi = plan.bound(i + 1, align);
    if (hi > lo) {
      detail::momentum_update_rows(n_in, lo, hi, K, x, ldx, dz, ldz, W, V, lr, mu,
                                   scratch.panels(i), scratch.sliver(i));
    }
  });
}
#endif

}  // namespace densa
