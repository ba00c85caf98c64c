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
//
// With AVX-512 (the x86-64-v4 module) the blocks are 32 columns wide, two 16-float
// vectors (Avx512 below), and the sliver K x 32: the same chain per element, so the same
// bits as the AVX2 blocks.
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

inline constexpr Index kMomTileRows = 6;  // W's rows per block: six broadcasts of dz
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

// The vectors a block works in: a block of W is kMomTileRows rows by two vectors of
// columns. Avx2: 8 floats each (16 columns, masks as integer vectors). Avx512 (the
// x86-64-v4 module): 16 floats each (32 columns, mask registers): twice the columns per
// multiply-add, with the same two loads and six broadcasts per sample, so the block is
// still bound by the multiply-adds, not the loads. Both run the same operations per
// element (the multiply-add chain over the samples, then v and W rounded as below), so
// the two modules compute the same bits (tests/test_momentum_kernel.py compares them).
struct Avx2 {
  using Vec = __m256;
  using Mask = __m256i;
  static constexpr Index kWidth = 8;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float a) { return _mm256_set1_ps(a); }
  static Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Vec a) { _mm256_storeu_ps(p, a); }
  // Lanes [0, n) of a vector (n may be <= 0 or >= kWidth).
  static Mask first(Index n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<Index>(n, 0, 8))),
                              lane);
  }
  static Vec load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Mask m, Vec a) { _mm256_maskstore_ps(p, m, a); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
};

#if defined(__AVX512F__)
#define DENSA_MOMENTUM_AVX512 1
struct Avx512 {
  using Vec = __m512;
  using Mask = __mmask16;
  static constexpr Index kWidth = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float a) { return _mm512_set1_ps(a); }
  static Vec broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Vec a) { _mm512_storeu_ps(p, a); }
  static Mask first(Index n) {
    const Index k = std::clamp<Index>(n, 0, 16);
    return static_cast<Mask>(k == 16 ? 0xFFFFu : (1u << k) - 1u);
  }
  static Vec load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Mask m, Vec a) { _mm512_mask_storeu_ps(p, m, a); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
};
using MomSimd = Avx512;
#else
#define DENSA_MOMENTUM_AVX512 0
using MomSimd = Avx2;
#endif

// W's columns per block in this module: two vectors.
inline constexpr Index kMomSimdCols = 2 * MomSimd::kWidth;

// c0 += a0 dz[C], c1 += a1 dz[C] for row C of a block (when the block has that row).
template <class V, int C, int NB>
__attribute__((always_inline)) inline void mom_row(const float* dz, typename V::Vec a0,
                                                   typename V::Vec a1, typename V::Vec& c0,
                                                   typename V::Vec& c1) {
  if constexpr (C < NB) {
    const typename V::Vec b = V::broadcast(dz + C);
    c0 = V::fmadd(a0, b, c0);
    c1 = V::fmadd(a1, b, c1);
  }
}

// A vector at p, only the lanes of m when MASK (the last columns of a row: nothing past
// its end is read or written).
template <class V, bool MASK>
__attribute__((always_inline)) inline typename V::Vec load_lanes(const float* p,
                                                                 typename V::Mask m) {
  if constexpr (MASK) {
    return V::load(p, m);
  } else {
    (void)m;
    return V::load(p);
  }
}

template <class V, bool MASK>
__attribute__((always_inline)) inline void store_lanes(float* p, typename V::Mask m,
                                                       typename V::Vec a) {
  if constexpr (MASK) {
    V::store(p, m, a);
  } else {
    (void)m;
    V::store(p, a);
  }
}

// The two vectors' masks and the learning rate and momentum, broadcast, for one tile.
template <class V>
struct MomLanes {
  typename V::Mask m0, m1;
  typename V::Vec lr, mu;
};

// Row C of a block: v = μ v + dW, W = W − lr v on two vectors of columns (masked lanes
// when MASK).
template <class V, int C, int NB, bool MASK>
__attribute__((always_inline)) inline void mom_store(float* W, float* Vel, Index ldw,
                                                     const MomLanes<V>& l, typename V::Vec g0,
                                                     typename V::Vec g1) {
  if constexpr (C < NB) {
    constexpr Index h = V::kWidth;
    float* w = W + C * ldw;
    float* v = Vel + C * ldw;
    // Two roundings each, no fused multiply-add: sgd_apply_velocity's bits.
    const auto v0 = V::add(V::mul(l.mu, load_lanes<V, MASK>(v, l.m0)), g0);
    const auto v1 = V::add(V::mul(l.mu, load_lanes<V, MASK>(v + h, l.m1)), g1);
    store_lanes<V, MASK>(v, l.m0, v0);
    store_lanes<V, MASK>(v + h, l.m1, v1);
    store_lanes<V, MASK>(w, l.m0, V::sub(load_lanes<V, MASK>(w, l.m0), V::mul(l.lr, v0)));
    store_lanes<V, MASK>(w + h, l.m1, V::sub(load_lanes<V, MASK>(w + h, l.m1), V::mul(l.lr, v1)));
  }
}

// One block: NB rows of W and v (row stride ldw) by two vectors of columns, from a K x
// kMomSimdCols block of x (S: lds floats apart per sample) and a K x 6 panel of dz (P, 6
// floats per sample). The accumulators are named variables, not an array (gemm_tn.hpp
// says why).
template <class V, int NB, bool MASK>
void mom_block(Index K, const float* S, Index lds, const float* P, float* W, float* Vel, Index ldw,
               const MomLanes<V>& l) {
  constexpr Index h = V::kWidth;
  // The block's rows of W and v are read only at the end, after K samples: ask for them
  // now (from the second-level cache: a slab's W and v are 0.8 MB on W3's first layer).
  for (int c = 0; c < NB; ++c) {
    for (Index i = 0; i < 2 * h; i += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(W + c * ldw + i), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(Vel + c * ldw + i), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(W + c * ldw + i + 15), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(Vel + c * ldw + i + 15), _MM_HINT_T0);
    }
  }
  const auto zero = V::zero();
  auto c00 = zero, c01 = zero, c02 = zero, c03 = zero, c04 = zero, c05 = zero;
  auto c10 = zero, c11 = zero, c12 = zero, c13 = zero, c14 = zero, c15 = zero;
  for (Index k = 0; k < K; ++k) {
    const auto a0 = V::load(S + k * lds);
    const auto a1 = V::load(S + k * lds + h);
    const float* dz = P + k * kMomTileRows;
    mom_row<V, 0, NB>(dz, a0, a1, c00, c10);
    mom_row<V, 1, NB>(dz, a0, a1, c01, c11);
    mom_row<V, 2, NB>(dz, a0, a1, c02, c12);
    mom_row<V, 3, NB>(dz, a0, a1, c03, c13);
    mom_row<V, 4, NB>(dz, a0, a1, c04, c14);
    mom_row<V, 5, NB>(dz, a0, a1, c05, c15);
  }
  mom_store<V, 0, NB, MASK>(W, Vel, ldw, l, c00, c10);
  mom_store<V, 1, NB, MASK>(W, Vel, ldw, l, c01, c11);
  mom_store<V, 2, NB, MASK>(W, Vel, ldw, l, c02, c12);
  mom_store<V, 3, NB, MASK>(W, Vel, ldw, l, c03, c13);
  mom_store<V, 4, NB, MASK>(W, Vel, ldw, l, c04, c14);
  mom_store<V, 5, NB, MASK>(W, Vel, ldw, l, c05, c15);
}

template <class V, bool MASK>
void mom_block_rows(Index nb, Index K, const float* S, Index lds, const float* P, float* W,
                    float* Vel, Index ldw, const MomLanes<V>& l) {
  switch (nb) {
    case 6:
      mom_block<V, 6, MASK>(K, S, lds, P, W, Vel, ldw, l);
      break;
    case 5:
      mom_block<V, 5, MASK>(K, S, lds, P, W, Vel, ldw, l);
      break;
    case 4:
      mom_block<V, 4, MASK>(K, S, lds, P, W, Vel, ldw, l);
      break;
    case 3:
      mom_block<V, 3, MASK>(K, S, lds, P, W, Vel, ldw, l);
      break;
    case 2:
      mom_block<V, 2, MASK>(K, S, lds, P, W, Vel, ldw, l);
      break;
    case 1:
      mom_block<V, 1, MASK>(K, S, lds, P, W, Vel, ldw, l);
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

// Whether the kernel reads x's inputs per sample where they are, ldx floats apart,
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
// K x kMomSimdCols floats.
template <class V>
void momentum_update_chunk(Index n_in, Index lo, Index hi, Index K, const float* x, Index ldx,
                           const float* dz, Index ldz, float* W, float* Vel, float lr, float mu,
                           float* panels, float* sliver) {
  constexpr Index R = kMomTileRows, h = V::kWidth, cols = 2 * h;
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
  const auto lr_v = V::set1(lr), mu_v = V::set1(mu);
  for (Index j0 = 0; j0 < n_in; j0 += cols) {
    const Index width = std::min(cols, n_in - j0);
    const MomLanes<V> l{V::first(width), V::first(width - h), lr_v, mu_v};
    // x's inputs j0 .. j0 + cols for every sample: where they are, or copied contiguous
    // (zero in masked lanes).
    const bool full = width == cols;
    const bool direct = full && read_x;
    const float* Sx = direct ? x + j0 : S;
    const Index lds = direct ? ldx : cols;
    if (!direct) {
      for (Index k = 0; k < K; ++k) {
        const float* xk = x + k * ldx + j0;
        V::store(S + k * cols, full ? V::load(xk) : V::load(xk, l.m0));
        V::store(S + k * cols + h, full ? V::load(xk + h) : V::load(xk + h, l.m1));
      }
    }
    Index row = lo;
    for (Index bi = 0; bi < n_blocks; ++bi) {
      const Index nb = mom_block_rows_at(hi - row);
      const float* P = panels + bi * R * K;
      float* w = W + row * n_in + j0;
      float* v = Vel + row * n_in + j0;
      if (full) {
        mom_block_rows<V, false>(nb, K, Sx, lds, P, w, v, n_in, l);
      } else {
        mom_block_rows<V, true>(nb, K, Sx, lds, P, w, v, n_in, l);
      }
      row += nb;
    }
  }
}

// Rows [lo, hi), a chunk at a time, with a slab's scratch (MomentumScratch).
inline void momentum_update_rows(Index n_in, Index lo, Index hi, Index K, const float* x, Index ldx,
                                 const float* dz, Index ldz, float* W, float* V, float lr, float mu,
                                 float* panels, float* sliver) {
  const Index chunk = mom_chunk_rows(K);
  for (Index c = lo; c < hi; c += chunk) {
    momentum_update_chunk<MomSimd>(n_in, c, std::min(hi, c + chunk), K, x, ldx, dz, ldz, W, V, lr,
                                   mu, panels, sliver);
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
      slivers_[i].resize(static_cast<size_t>(detail::kMomSimdCols * max_batch_));
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
