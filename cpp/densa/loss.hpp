// Costs on the output batch y_K (m_K x N, a column per sample), summed over outputs and
// averaged over samples, each fused with its gradient dy_K = dJ/dy_K (NOTATION.md,
// "dy (cost gradient)"). The cross-entropy losses take logits: softmax and sigmoid are
// folded into the loss, where they are numerically stable.
#pragma once

#include <cmath>
#include <string>

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

// Softmax cross-entropy over logits z (m x n), per column:
//   J_n = lse(z_n) Σ_k t_k - Σ_k t_k z_k = Σ_k t_k · log(s) - Σ_k t_k (z_k - max z)
//   with s = Σ_k exp(z_k - max z), and dy_k = (exp(z_k - max z) / s · Σ t - t_k) / N.
// Writing it with the shifted logits keeps max z out of the sum (no cancellation). The
// exponentials of the whole batch are one vectorised pass through aligned chunks (one
// call to the scalar exp per element cost ~8x more on a 10-class output); the maxima and
// sums are plain loops in a fixed order, so the bits do not depend on where arrays sit.
// e holds the shifted logits, then their exponentials: dy itself, or scratch.
template <class T>
T softmax_cross_entropy(const ConstBatchRef<T>& z, const ConstBatchRef<T>& t, BatchRef<T>* dy,
                        T inv_n) {
  const Index m = z.rows(), n = z.cols();
  Matrix<T> scratch;
  if (!dy) scratch.resize(m, n);
  BatchRef<T> e = dy ? BatchRef<T>(*dy) : BatchRef<T>(scratch);
  T total = T(0);
  for (Index j = 0; j < n; ++j) {
    const T* zj = z.data() + j * z.outerStride();
    const T* tj = t.data() + j * t.outerStride();
    T* ej = e.data() + j * e.outerStride();
    T zmax = zj[0];
    // A NaN or inf anywhere makes some z_k - max z NaN, and so J: divergence is seen.
    for (Index k = 1; k < m; ++k) zmax = zj[k] > zmax ? zj[k] : zmax;
    T t_shifted = T(0);
    for (Index k = 0; k < m; ++k) {
      ej[k] = zj[k] - zmax;        // z_k - max z
      t_shifted += tj[k] * ej[k];  // Σ t_k (z_k - max z)
    }
    total -= t_shifted;
  }
  for_aligned_chunks<T>(e, nullptr, e, [](const auto& xc, const auto&, auto& oc, auto&) {
    oc = xc.exp();  // exp(z_k - max z)
  });
  for (Index j = 0; j < n; ++j) {
    const T* tj = t.data() + j * t.outerStride();
    T* ej = e.data() + j * e.outerStride();
    T s = T(0), t_sum = T(0);
    for (Index k = 0; k < m; ++k) {
      s += ej[k];
      t_sum += tj[k];
    }
    total += t_sum * std::log(s);  // Σ_k t_k · lse, less the max already taken out
    if (dy) {
      const T scale = t_sum / s;  // one division per sample, not per output
      for (Index k = 0; k < m; ++k) ej[k] = (ej[k] * scale - tj[k]) * inv_n;
    }
  }
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
