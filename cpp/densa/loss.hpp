// Costs on the output batch y_K (m_K x N, a column per sample), summed over outputs and
// averaged over samples, each fused with its gradient dy_K = dJ/dy_K (NOTATION.md,
// "dy (cost gradient)"). The cross-entropy losses take logits: softmax and sigmoid are
// folded into the loss, where they are numerically stable.
#pragma once

#include <cmath>
#include <string>

#include "activation.hpp"
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
    case Loss::softmax_cross_entropy: {
      T total = T(0);
      for (Index j = 0; j < n; ++j) {
        auto zj = out.col(j).array();
        auto tj = target.col(j).array();
        const T zmax = zj.maxCoeff();
        const T sum_exp = (zj - zmax).exp().sum();
        const T lse = zmax + std::log(sum_exp);
        const T t_sum = tj.sum();
        total += lse * t_sum - (tj * zj).sum();
        if (dy) {
          dy->col(j).array() = ((zj - zmax).exp() / sum_exp * t_sum - tj) * inv_n;
        }
      }
      return total * inv_n;
    }
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
