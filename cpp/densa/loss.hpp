// Costs on the output batch y_K (m_K x N, a column per sample), summed over outputs and
// averaged over samples, each fused with its gradient dy_K = dJ/dy_K (NOTATION.md,
// "dy (cost gradient)"). The cross-entropy losses take logits: softmax and sigmoid are
// folded into the loss, where they are numerically stable.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "activation.hpp"
#include "elementwise.hpp"
#include "types.hpp"

namespace densa {

enum class Loss { mse, softmax_cross_entropy, binary_cross_entropy };

inline Loss loss_from_name(const std::string& name) {
  if (name == "mse") return Loss::mse;
  if (name == "softmax_cross_entropy") return Loss::softmax_cross_entropy;
  if (name == "binary_cross_entropy") return Loss::binary_cross_entropy;
  throw std::invalid_argument("loss: unknown name '" + name +
                              "'; expected one of mse, softmax_cross_entropy, "
                              "binary_cross_entropy");
}

inline void check_loss_shapes(Index out_rows, Index out_cols, Index t_rows, Index t_cols) {
  DENSA_REQUIRE(out_rows == t_rows && out_cols == t_cols,
                "loss: target has shape " + shape_str(t_cols, t_rows) +
                    " but the output has shape " + shape_str(out_cols, out_rows));
}

namespace detail {

// A thread's scratch for the softmax below: grown, never shrunk, so a training run
// allocates once; 64-byte aligned (Eigen's packet path on every element, see
// elementwise.hpp).
template <class T>
T* softmax_scratch(Index size) {
  thread_local std::vector<T> buf;
  const Index pad = 64 / static_cast<Index>(sizeof(T));
  if (static_cast<Index>(buf.size()) < size + pad) buf.resize(static_cast<size_t>(size + pad));
  const auto addr = reinterpret_cast<std::uintptr_t>(buf.data());
  return buf.data() + ((64 - addr % 64) % 64) / sizeof(T);
}

// Softmax cross-entropy over logits z (m x n), per column:
//   J_n = lse(z_n) Σ_k t_k - Σ_k t_k z_k = Σ_k t_k · log(s) - Σ_k t_k (z_k - max z)
//   with s = Σ_k exp(z_k - max z), and dy_k = (exp(z_k - max z) / s · Σ t - t_k) / N.
// Writing it with the shifted logits keeps max z out of the sum (no cancellation).
//
// Each sample's maximum and sums run over k in a fixed order, which is a chain of
// dependent operations: walked column by column they cost ~100 cycles of latency per
// sample (a third of a digits batch's output layer). So samples go through in blocks of
// kSoftmaxBlock, transposed into rows (row k holds z_k of every sample of the block):
// each loop over a row is then one SIMD lane per sample, every lane doing exactly what
// the per-column loop did, in the same order. The exponentials and the logarithms are
// Eigen's packet functions on aligned, padded arrays, so no element takes a scalar path;
// the bits depend neither on where arrays sit nor on a sample's place in its block.
inline constexpr Index kSoftmaxBlock = 16;

template <class T>
T softmax_cross_entropy(const ConstBatchRef<T>& z, const ConstBatchRef<T>& t, BatchRef<T>* dy,
                        T inv_n) {
  constexpr Index B = kSoftmaxBlock;
  using Aligned = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>;
  const Index m = z.rows(), n = z.cols();
  const Index n_pad = (n + B - 1) / B * B;
  // zt, tt: the block transposed (m x B each); then per sample of the batch: Σ t_k (z_k -
  // max z), s and Σ t_k. Every part starts 64-byte aligned (B·sizeof(T) is 64 or 128).
  T* zt = softmax_scratch<T>(2 * m * B + 3 * n_pad);
  T* tt = zt + m * B;
  T* t_shifted = tt + m * B;
  T* s_all = t_shifted + n_pad;
  T* t_sum = s_all + n_pad;
  for (Index j0 = 0; j0 < n; j0 += B) {
    const Index nb = std::min(B, n - j0);
    for (Index jj = 0; jj < B; ++jj) {  // padding samples are zeros: finite, then unused
      const T* zj = jj < nb ? z.data() + (j0 + jj) * z.outerStride() : nullptr;
      const T* tj = jj < nb ? t.data() + (j0 + jj) * t.outerStride() : nullptr;
      for (Index k = 0; k < m; ++k) {
        zt[k * B + jj] = zj ? zj[k] : T(0);
        tt[k * B + jj] = tj ? tj[k] : T(0);
      }
    }
    alignas(64) T zmax[B], ts[B], s[B], tsum[B];
    for (Index jj = 0; jj < B; ++jj) zmax[jj] = zt[jj];
    // A NaN or inf anywhere makes some z_k - max z NaN, and so J: divergence is seen.
    for (Index k = 1; k < m; ++k) {
      for (Index jj = 0; jj < B; ++jj) {
        const T v = zt[k * B + jj];
        zmax[jj] = v > zmax[jj] ? v : zmax[jj];
      }
    }
    for (Index jj = 0; jj < B; ++jj) ts[jj] = s[jj] = tsum[jj] = T(0);
    for (Index k = 0; k < m; ++k) {
      for (Index jj = 0; jj < B; ++jj) {
        const T e = zt[k * B + jj] - zmax[jj];  // z_k - max z
        zt[k * B + jj] = e;
        ts[jj] += tt[k * B + jj] * e;  // Σ t_k (z_k - max z)
      }
    }
    Aligned ez(zt, m * B);
    ez = ez.exp();  // exp(z_k - max z)
    for (Index k = 0; k < m; ++k) {
      for (Index jj = 0; jj < B; ++jj) {
        s[jj] += zt[k * B + jj];
        tsum[jj] += tt[k * B + jj];
      }
    }
    for (Index jj = 0; jj < nb; ++jj) {
      t_shifted[j0 + jj] = ts[jj];
      s_all[j0 + jj] = s[jj];
      t_sum[j0 + jj] = tsum[jj];
    }
    if (dy) {
      alignas(64) T scale[B];
      for (Index jj = 0; jj < B; ++jj) scale[jj] = tsum[jj] / s[jj];  // one division per sample
      for (Index k = 0; k < m; ++k) {
        for (Index jj = 0; jj < B; ++jj) {
          zt[k * B + jj] = (zt[k * B + jj] * scale[jj] - tt[k * B + jj]) * inv_n;
        }
      }
      for (Index jj = 0; jj < nb; ++jj) {
        T* dj = dy->data() + (j0 + jj) * dy->outerStride();
        for (Index k = 0; k < m; ++k) dj[k] = zt[k * B + jj];
      }
    }
  }
  std::fill(s_all + n, s_all + n_pad, T(1));
  Aligned log_s(s_all, n_pad);
  log_s = log_s.log();
  T total = T(0);
  for (Index j = 0; j < n; ++j) total -= t_shifted[j];
  for (Index j = 0; j < n; ++j) total += t_sum[j] * s_all[j];  // Σ_k t_k · lse, less max z
  return total * inv_n;
}

}  // namespace detail

// Returns J for the batch; when dy is given (non-null), also writes dy = dJ/dy_K.
// `scratch` is m x N workspace (may be dy itself only when dy is wanted).
//   mse:  J = 1/(2N) Σ ||y_K - t||²               dy = (y_K - t) / N
//   softmax_cross_entropy over logits z:
//         J = 1/N Σ_n [ lse(z_n) Σ_k t_nk - Σ_k t_nk z_nk ]
//         dy = (softmax(z) Σ_k t_k - t) / N   (= (softmax(z) - t)/N for one-hot t)
//   binary_cross_entropy over logits z, t in {0, 1} (or [0, 1]):
//         J = 1/N Σ [ max(z, 0) - z t + log1p(exp(-|z|)) ]
//         dy = (sigmoid(z) - t) / N
template <class T>
T loss_forward_backward(Loss loss, const ConstBatchRef<T>& out, const ConstBatchRef<T>& target,
                        BatchRef<T>* dy) {
  check_loss_shapes(out.rows(), out.cols(), target.rows(), target.cols());
  const Index n = out.cols();
  DENSA_REQUIRE(n > 0, "loss: the batch has no samples");
  if (dy) {
    DENSA_REQUIRE(dy->rows() == out.rows() && dy->cols() == n,
                  "loss: dy buffer has the wrong shape");
  }
  const T inv_n = T(1) / static_cast<T>(n);
  switch (loss) {
    case Loss::mse: {
      T total = (out - target).squaredNorm();
      if (dy) dy->noalias() = (out - target) * inv_n;
      return T(0.5) * total * inv_n;
    }
    case Loss::softmax_cross_entropy:
      return detail::softmax_cross_entropy<T>(out, target, dy, inv_n);
    case Loss::binary_cross_entropy: {
      auto z = out.array();
      auto t = target.array();
      T total = (z.max(T(0)) - z * t + (-z.abs()).exp().log1p()).sum();
      if (dy) dy->array() = (stable_sigmoid(z) - t) * inv_n;
      return total * inv_n;
    }
  }
  return T(0);
}

}  // namespace densa
