// The one place where densa multiplies matrices: the three products of a dense layer
// (z = W x, dW = dz xᵀ, dx = Wᵀ dz) all come here. Pure C++: nothing here knows Python.
//
// Back ends (compile time):
//   DENSA_USE_BLAS=1  OpenBLAS from the scipy-openblas32 wheel, through its cblas.h
//                     (symbols prefixed scipy_, 32-bit ints). Measured on a 2-core Zen
//                     machine: Eigen 3.4's own GEMM tops out near 0.7x OpenBLAS at 1024²
//                     whatever the tuning; OpenBLAS's run-time-selected kernels close it.
//   otherwise         Eigen's product, single-threaded per slab (same slabs, same
//                     determinism; slower on large layers).
// Element-wise work (bias, activation, masks, db) stays in Eigen, in dense.hpp. One shape
// has a kernel of densa's own (gemm_tn.hpp): the float32 forward product of a minibatch
// of 8 to 64 samples, where OpenBLAS is slower.
//
// Threads and determinism: a product is cut into slabs of C whose bounds depend on the
// shape (M, N, K) only, never on the thread count; each slab is one single-threaded
// product, and densa's pool (parallel.hpp) spreads the slabs over its threads. Every
// element of C is thus computed by the same call on the same data whatever the thread
// count, so results are bitwise identical for 1, 2, ... threads. A product too small to
// be worth splitting is one slab, run on the calling thread.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

#include "gemm_tn.hpp"
#include "parallel.hpp"
#include "types.hpp"

#if DENSA_USE_BLAS
#include <cblas.h>  // scipy-openblas32: scipy_cblas_sgemm, scipy_openblas_set_num_threads
#endif

namespace densa {

enum class Op { N, T };  // op(A) = A or Aᵀ

// How products are cut into slabs. Changing these changes how results are rounded (not
// their thread-count independence); they are constants of a build, exposed for tuning.
// max_slabs is the machine's number of CPUs (at least 2): a property of the machine, never
// of the thread count set. Fewer, larger slabs waste less (each slab re-packs the operand
// it does not cut): on the 2-core development machine, K1 (1024², batch 512) at 2 threads
// measured 156 GFLOP/s with 2 slabs against 139-143 with 4 or 8.
struct SlabPolicy {
  double min_slab_flops = 1.0e6;  // a product of fewer than 2x this flops is one slab
  std::int64_t max_slabs = 2;     // slabs of one product, at most
  std::int64_t align = 16;        // slab bounds are multiples of this (64 B of float)
  // Element-wise passes: values per pool task, at least. 8192 puts W3's 256x64 hidden
  // layer on both threads (64 Ki had left it on one: 539 -> 516 us per batch).
  Index elementwise_block = 8192;
};

inline SlabPolicy& slab_policy() {
  static SlabPolicy policy = [] {
    SlabPolicy p;
    p.max_slabs = std::max<std::int64_t>(2, std::thread::hardware_concurrency());
    return p;
  }();
  return policy;
}

// Element-wise passes over a large batch (bias, activation, dz) are cut into this many
// column blocks on the pool; every element is computed the same way whatever the block
// (elementwise.hpp), so any cut gives the same bits.
inline std::int64_t elementwise_blocks(Index elements) {
  const Index per_block = slab_policy().elementwise_block;
  const std::int64_t n = static_cast<std::int64_t>(elements / per_block);
  return std::max<std::int64_t>(1, std::min<std::int64_t>(n, slab_policy().max_slabs));
}

// Runs body(col_lo, col_hi) over column blocks of a cols-wide batch of `elements` values.
template <class F>
void for_column_blocks(Index cols, Index elements, F&& body) {
  const std::int64_t blocks = std::min<std::int64_t>(elementwise_blocks(elements), cols);
  if (blocks <= 1) {
    body(Index(0), cols);
    return;
  }
  thread_pool().run(blocks, [&](std::int64_t i) {
    const Index lo = cols * static_cast<Index>(i) / blocks;
    const Index hi = cols * static_cast<Index>(i + 1) / blocks;
    if (hi > lo) body(lo, hi);
  });
}

inline bool blas_enabled() { return DENSA_USE_BLAS != 0; }

// Once per process: OpenBLAS must compute each call on the calling thread only (densa's
// pool supplies the parallelism, and OpenBLAS's own split would change results).
inline void init_gemm_backend() {
#if DENSA_USE_BLAS
  static const bool done = [] {
    scipy_openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
#endif
}

inline std::string blas_description() {
#if DENSA_USE_BLAS
  const char* config = scipy_openblas_get_config();
  const char* core = scipy_openblas_get_corename();
  return std::string("scipy-openblas32 (") + (config ? config : "?") + "; kernel " +
         (core ? core : "?") + ")";
#else
  return "none (Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." +
         std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) +
         " products)";
#endif
}

namespace detail {

// BLAS takes 32-bit ints; a larger size or leading dimension cannot be passed.
inline int blas_int(Index v, const char* what) {
  if (v < 0 || v > static_cast<Index>(INT_MAX)) {
    throw std::length_error(std::string("gemm: ") + what + " = " + std::to_string(v) +
                            " exceeds the 32-bit BLAS limit (2147483647)");
  }
  return static_cast<int>(v);
}

// C = beta C, where beta = 0 overwrites (not 0 · C: C may hold NaN before its first
// write) and beta = 1 leaves C untouched.
template <class CMap, class T>
void scale_by_beta(CMap&& C, T beta) {
  if (beta == T(0)) {
    C.setZero();
  } else if (beta != T(1)) {
    C *= beta;
  }
}

// Whether densa's own kernel (gemm_tn.hpp) computes the product: the forward product of
// a minibatch, where it beats OpenBLAS. Decided once for the whole product, never per
// slab, so that every slab of it takes the same kernel: gemm_tn's results do not depend on
// where a slab starts, and then neither do the product's.
template <class T>
bool gemm_tn_computes(Op ta, Op tb, Index M, Index N, Index K, T beta) {
#if DENSA_HAVE_GEMM_TN
  if constexpr (sizeof(T) == 4) {
    return ta == Op::T && tb == Op::N && beta == T(0) && use_gemm_tn(M, N, K);
  }
#endif
  (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)beta;
  return false;
}

// One slab: C (M x N, ldc) = op(A) op(B) + beta C, single-threaded. own_kernel: the whole
// product's gemm_tn_computes (op(A) = Aᵀ, op(B) = B, beta = 0, float).
template <class T>
void gemm_slab(Op ta, Op tb, Index M, Index N, Index K, const T* A, Index lda, const T* B,
               Index ldb, T* C, Index ldc, T beta, bool own_kernel) {
  if (M == 0 || N == 0) return;
  using Stride = Eigen::OuterStride<>;
  if (K == 0) {
    scale_by_beta(Eigen::Map<Matrix<T>, 0, Stride>(C, M, N, Stride(ldc)), beta);
    return;
  }
#if DENSA_HAVE_GEMM_TN
  if constexpr (sizeof(T) == 4) {
    if (own_kernel) {
      gemm_tn(M, N, K, A, lda, B, ldb, C, ldc);
      return;
    }
  }
#endif
  (void)own_kernel;
#if DENSA_USE_BLAS
  const auto opa = ta == Op::N ? CblasNoTrans : CblasTrans;
  const auto opb = tb == Op::N ? CblasNoTrans : CblasTrans;
  if constexpr (sizeof(T) == 4) {
    scipy_cblas_sgemm(CblasColMajor, opa, opb, static_cast<int>(M), static_cast<int>(N),
                      static_cast<int>(K), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb),
                      static_cast<float>(beta), C, static_cast<int>(ldc));
  } else {
    scipy_cblas_dgemm(CblasColMajor, opa, opb, static_cast<int>(M), static_cast<int>(N),
                      static_cast<int>(K), 1.0, A, static_cast<int>(lda), B, static_cast<int>(ldb),
                      static_cast<double>(beta), C, static_cast<int>(ldc));
  }
#else
  using CMap = Eigen::Map<const Matrix<T>, 0, Stride>;
  Eigen::Map<Matrix<T>, 0, Stride> Cm(C, M, N, Stride(ldc));
  const CMap Am(A, ta == Op::N ? M : K, ta == Op::N ? K : M, Stride(lda));
  const CMap Bm(B, tb == Op::N ? K : N, tb == Op::N ? N : K, Stride(ldb));
  scale_by_beta(Cm, beta);
  if (ta == Op::N && tb == Op::N) {
    Cm.noalias() += Am * Bm;
  } else if (ta == Op::N) {
    Cm.noalias() += Am * Bm.transpose();
  } else if (tb == Op::N) {
    Cm.noalias() += Am.transpose() * Bm;
  } else {
    Cm.noalias() += Am.transpose() * Bm.transpose();
  }
#endif
}

}  // namespace detail

// Slab layout of a product: `count` slabs cutting C's columns (split_cols) or rows.
struct SlabPlan {
  std::int64_t count = 1;
  bool split_cols = true;
  Index extent = 0;  // the length of the split dimension
  Index bound(std::int64_t i, std::int64_t align) const {
    if (i >= count) return extent;
    const Index raw = extent * static_cast<Index>(i) / static_cast<Index>(count);
    return std::min(extent, (raw + align / 2) / align * align);
  }
};

// Which side of C a product's slabs cut. `larger`: the larger side, so that the operand
// every slab re-packs is the smaller one. The layer's products ask for the side that
// follows W's rows (outputs), so that each thread computes, in the forward product, the
// dW product and the update, the same block of W, dW and velocity, which then stays in
// its own core's cache (W3's first layer: 0.8 MB per array).
enum class Split { larger, rows, cols };

// A function of the shape only (never of the thread count): see the header comment.
inline SlabPlan plan_slabs(Index M, Index N, Index K, Split split = Split::larger) {
  const SlabPolicy& p = slab_policy();
  SlabPlan plan;
  plan.split_cols = split == Split::larger ? N >= M : split == Split::cols;
  plan.extent = plan.split_cols ? N : M;
  const double flops =
      2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  std::int64_t count = static_cast<std::int64_t>(flops / p.min_slab_flops);
  count = std::min(count, p.max_slabs);
  count = std::min<std::int64_t>(count, static_cast<std::int64_t>(plan.extent / p.align));
  plan.count = std::max<std::int64_t>(1, count);
  return plan;
}

// C (M x N, column-major, leading dimension ldc) = op(A) · op(B) + beta · C, where op(A)
// is M x K (A stored column-major with leading dimension lda, K x M when ta = T) and
// op(B) is K x N likewise. beta = 0 overwrites C (whatever it held, NaN included); the
// trainer passes the momentum as beta to fold v = μ v + dθ into the product. C must not
// overlap A or B.
template <class T>
void gemm(Op ta, Op tb, Index M, Index N, Index K, const T* A, Index lda, const T* B, Index ldb,
          T* C, Index ldc, T beta = T(0), Split split = Split::larger) {
  if (M == 0 || N == 0) return;
#if DENSA_USE_BLAS
  detail::blas_int(M, "M");
  detail::blas_int(N, "N");
  detail::blas_int(K, "K");
  detail::blas_int(lda, "lda");
  detail::blas_int(ldb, "ldb");
  detail::blas_int(ldc, "ldc");
  init_gemm_backend();
#endif
  const bool own_kernel = detail::gemm_tn_computes(ta, tb, M, N, K, beta);
  const SlabPlan plan = plan_slabs(M, N, K, split);
  if (plan.count == 1) {
    detail::gemm_slab<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta, own_kernel);
    return;
  }
  const std::int64_t align = slab_policy().align;
  thread_pool().run(plan.count, [&](std::int64_t i) {
    const Index lo = plan.bound(i, align), hi = plan.bound(i + 1, align);
    if (hi <= lo) return;
    if (plan.split_cols) {
      // columns lo..hi of C = op(A) · (columns lo..hi of op(B))
      const T* Bs = tb == Op::N ? B + lo * ldb : B + lo;
      detail::gemm_slab<T>(ta, tb, M, hi - lo, K, A, lda, Bs, ldb, C + lo * ldc, ldc, beta,
                           own_kernel);
    } else {
      // rows lo..hi of C = (rows lo..hi of op(A)) · op(B)
      const T* As = ta == Op::N ? A + lo : A + lo * lda;
      detail::gemm_slab<T>(ta, tb, hi - lo, N, K, As, lda, B, ldb, C + lo, ldc, beta, own_kernel);
    }
  });
}

}  // namespace densa
