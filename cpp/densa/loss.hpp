// Costs on the output batch y_K (m_K x N, a column per sample), summed over outputs and
// averaged over samples, each fused with its gradient dy_K = dJ/dy_K (docs/backprop.md,
// "The cost and its gradient dy_K"). The cross-entropy losses take logits: softmax and sigmoid are
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
// dependent operations: walked column by column they are latency-bound. So samples go
// through in blocks of kSoftmaxBlock, transposed (column k of the block holds z_k of
// each of its samples): each step over k is then one SIMD lane per sample, every lane
// doing what the per-column loop did, in the same order (a digits batch: 770 -> 600 ns). The
// exponentials and the logarithms are Eigen's packet functions on aligned, padded arrays, so no
// element takes a scalar path; the bits depend neither on where arrays sit nor on a sample's place
// in its block.
//
// SamplesInRows: z, t and dy hold a row per sample (n x m) instead of a column, as the
// hidden split keeps its output layer (hidden_split.hpp). A block is then copied, not
// transposed, and every value goes through the same operations: the same J and dy bits.
inline constexpr Index kSoftmaxBlock = 16;

template <class T, bool SamplesInRows = false>
T softmax_cross_entropy(const ConstBatchRef<T>& z, const ConstBatchRef<T>& t, BatchRef<T>* dy,
                        T inv_n) {
  constexpr Index B = kSoftmaxBlock;
  using Aligned = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>;
  const Index m = SamplesInRows ? z.cols() : z.rows(), n = SamplesInRows ? z.rows() : z.cols();
  const Index n_pad = (n + B - 1) / B * B;
  // zt, tt: a block transposed, B x m column-major (column k: z_k or t_k of each sample);
  // then, per sample of the batch, Σ t_k (z_k - max z), s and Σ t_k. Every part starts
  // 64-byte aligned (B·sizeof(T) is 64 or 128 bytes).
  T* zt = softmax_scratch<T>(2 * m * B + 3 * n_pad);
  T* tt = zt + m * B;
  T* t_shifted = tt + m * B;
  T* s_all = t_shifted + n_pad;
  T* t_sum = s_all + n_pad;
  using Lanes = Eigen::Array<T, B, 1>;  // one value per sample of a block
  using Block = Eigen::Map<Eigen::Array<T, B, Eigen::Dynamic>, Eigen::Aligned64>;
  Block zb(zt, B, m), tb(tt, B, m);  // column k: z_k (t_k) of the block's samples
  for (Index j0 = 0; j0 < n; j0 += B) {
    const Index nb = std::min(B, n - j0);
    // Padding samples are zeros: finite, and never copied out.
    if constexpr (SamplesInRows) {
      zb.topRows(nb) = z.middleRows(j0, nb).array();
      tb.topRows(nb) = t.middleRows(j0, nb).array();
    } else {
      zb.topRows(nb) = z.middleCols(j0, nb).transpose().array();
      tb.topRows(nb) = t.middleCols(j0, nb).transpose().array();
    }
    if (nb < B) {
      zb.bottomRows(B - nb).setZero();
      tb.bottomRows(B - nb).setZero();
    }
    // A NaN or inf anywhere makes some z_k - max z NaN, and so J: divergence is seen.
    Lanes zmax = zb.col(0);
    for (Index k = 1; k < m; ++k) zmax = (zb.col(k) > zmax).select(zb.col(k), zmax);
    Lanes ts = Lanes::Zero(), s = Lanes::Zero(), tsum = Lanes::Zero();
    for (Index k = 0; k < m; ++k) {
      zb.col(k) -= zmax;            // z_k - max z
      ts += tb.col(k) * zb.col(k);  // Σ t_k (z_k - max z)
    }
    Aligned ez(zt, m * B);
    ez = ez.exp();  // exp(z_k - max z)
    for (Index k = 0; k < m; ++k) {
      s += zb.col(k);
      tsum += tb.col(k);
    }
    using Part = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    Part(t_shifted + j0, nb) = ts.head(nb);
    Part(s_all + j0, nb) = s.head(nb);
    Part(t_sum + j0, nb) = tsum.head(nb);
    if (dy) {
      const Lanes scale = tsum / s;  // one division per sample
      for (Index k = 0; k < m; ++k) zb.col(k) = (zb.col(k) * scale - tb.col(k)) * inv_n;
      if constexpr (SamplesInRows) {
        dy->middleRows(j0, nb) = zb.topRows(nb).matrix();
      } else {
        dy->middleCols(j0, nb) = zb.topRows(nb).transpose().matrix();
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
//
// SamplesInRows: out, target and dy hold a row per sample (N x m_K) instead of a column
// (see softmax_cross_entropy). dy is then the same bits, element for element; J of mse
// and binary cross-entropy is summed in another order.
template <class T, bool SamplesInRows = false>
T loss_forward_backward(Loss loss, const ConstBatchRef<T>& out, const ConstBatchRef<T>& target,
                        BatchRef<T>* dy) {
  if constexpr (SamplesInRows) {
    check_loss_shapes(out.cols(), out.rows(), target.cols(), target.rows());
  } else {
    check_loss_shapes(out.rows(), out.cols(), target.rows(), target.cols());
  }
  const Index n = SamplesInRows ? out.rows() : out.cols();
  DENSA_REQUIRE(n > 0, "loss: the batch has no samples");
  if (dy) {
    DENSA_REQUIRE(dy->rows() == out.rows() && dy->cols() == out.cols(),
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
      return detail::softmax_cross_entropy<T, SamplesInRows>(out, target, dy, inv_n);
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
