// The dense layer of docs/backprop.md, forward and backward, on column-major batches
// (one column per sample). Each line carries the equation it computes.
#pragma once

#include "activation.hpp"
#include "gemm.hpp"
#include "types.hpp"

namespace densa {

template <class T>
void check_dense_shapes(const ConstWeightRef<T>& W, Index b_size, Index x_rows, Index x_cols,
                        const char* x_name) {
  DENSA_REQUIRE(b_size == W.rows(),
                "dense: b has " + std::to_string(b_size) + " entries but W has shape " +
                    shape_str(W.rows(), W.cols()) + " (b needs W.shape[0] entries)");
  DENSA_REQUIRE(x_rows == W.cols(), std::string("dense: ") + x_name + " has shape " +
                                        shape_str(x_cols, x_rows) + " but W has shape " +
                                        shape_str(W.rows(), W.cols()) + " (" + x_name +
                                        ".shape[1] must equal W.shape[1])");
}

// z += b, then y = f(z): the forward's element-wise part, on a block of z and y.
template <class T>
void bias_activation(Activation a, const ConstVectorRef<T>& b, BatchRef<T> z, BatchRef<T> y) {
  if (detail::is_exact(a)) {
    exact_bias_activation<T>(a, b, z, y);  // + b_{j-1} and y_j = f_j(z_j), one pass
    return;
  }
  z.colwise() += b;          // + b_{j-1}
  activation_f<T>(a, z, y);  // y_j = f_j(z_j)
}

// z_j = W_{j-1} y_{j-1} + b_{j-1};  y_j = f_j(z_j)
template <class T>
void dense_forward(const ConstWeightRef<T>& W, const ConstVectorRef<T>& b,
                   const ConstBatchRef<T>& x, Activation a, BatchRef<T> z, BatchRef<T> y) {
  check_dense_shapes<T>(W, b.size(), x.rows(), x.cols(), "x");
  DENSA_REQUIRE(
      z.rows() == W.rows() && z.cols() == x.cols() && y.rows() == z.rows() && y.cols() == z.cols(),
      "dense_forward: output buffers have the wrong shape");
  // W_{j-1} y_{j-1}: W's row-major bytes are Wᵀ column-major, hence Op::T.
  gemm<T>(Op::T, Op::N, W.rows(), x.cols(), W.cols(), W.data(), W.outerStride(), x.data(),
          x.outerStride(), z.data(), z.outerStride(), T(0), Split::rows);
  for_column_blocks(z.cols(), z.size(), [&](Index lo, Index hi) {
    bias_activation<T>(a, b, z.middleCols(lo, hi - lo), y.middleCols(lo, hi - lo));
  });
}

// Backward through one layer, given dy = dJ/dy_j:
//   dz_j     = dy_j ⊙ f_j'(z_j)
//   dW_{j-1} = dz_j · y_{j-1}ᵀ        (y_{j-1} = x, the layer's last input)
//   db_{j-1} = sum(dz_j, axis=1)
//   dx_{j-1} = W_{j-1}ᵀ · dz_j
// db_tmp is an aligned scratch vector (grown here if it holds fewer than W.rows()
// entries; the trainer sizes it once): reducing straight into a caller buffer of unknown
// alignment can change Eigen's summation order (1 ulp differences from run to run). dx may be
// skipped (compute_dx = false) for the first layer, whose input gradient nobody needs.
// dW_beta != 0 accumulates instead, dW = dz_j · y_{j-1}ᵀ + dW_beta · dW: the trainer
// passes SGD's velocity, already scaled to μ v (parameters.hpp), as dW with dW_beta = 1,
// so that v = μ v + dW costs no pass of its own over memory. compute_dW = false leaves
// dW to the caller (the trainer's momentum kernel, momentum_update.hpp, which forms it
// and updates W in one pass: after this call, since dx must be computed from W as it was).
template <class T>
void dense_backward(const ConstWeightRef<T>& W, const ConstBatchRef<T>& x,
                    const ConstBatchRef<T>& z, const ConstBatchRef<T>& dy, Activation a,
                    BatchRef<T> dz, WeightRef<T> dW, VectorRef<T> db, Vector<T>& db_tmp,
                    BatchRef<T> dx, bool compute_dx = true, T dW_beta = T(0),
                    bool compute_dW = true) {
  check_dense_shapes<T>(W, W.rows(), x.rows(), x.cols(), "x");
  DENSA_REQUIRE(z.rows() == W.rows() && z.cols() == x.cols(),
                "dense_backward: z has shape " + shape_str(z.cols(), z.rows()) + " but expected " +
                    shape_str(x.cols(), W.rows()) + " (N samples, W.shape[0] outputs)");
  DENSA_REQUIRE(dy.rows() == z.rows() && dy.cols() == z.cols(),
                "dense_backward: dy has shape " + shape_str(dy.cols(), dy.rows()) +
                    " but z has shape " + shape_str(z.cols(), z.rows()));
  DENSA_REQUIRE(dz.rows() == z.rows() && dz.cols() == z.cols() && dW.rows() == W.rows() &&
                    dW.cols() == W.cols() && db.size() == W.rows(),
                "dense_backward: output buffers have the wrong shape");
  for_column_blocks(z.cols(), z.size(), [&](Index lo, Index hi) {
    // dz_j = dy_j ⊙ f_j'(z_j)
    activation_backward<T>(a, z.middleCols(lo, hi - lo), dy.middleCols(lo, hi - lo),
                           dz.middleCols(lo, hi - lo));
  });
  // dW_{j-1} = dz_j · y_{j-1}ᵀ, written row-major, i.e. as dWᵀ = y_{j-1} · dz_jᵀ
  // column-major.
  if (compute_dW) {
    gemm<T>(Op::N, Op::T, W.cols(), W.rows(), x.cols(), x.data(), x.outerStride(), dz.data(),
            dz.outerStride(), dW.data(), dW.outerStride(), dW_beta, Split::cols);
  }
  if (db_tmp.size() < W.rows()) db_tmp.resize(W.rows());
  auto db_sum = db_tmp.head(W.rows());
  db_sum.noalias() = dz.rowwise().sum();  // db_{j-1} = sum(dz_j, axis=1)
  db = db_sum;
  if (compute_dx) {
    DENSA_REQUIRE(dx.rows() == W.cols() && dx.cols() == x.cols(),
                  "dense_backward: dx buffer has the wrong shape");
    // dx_{j-1} = W_{j-1}ᵀ · dz_j (W's row-major bytes are Wᵀ column-major: Op::N)
    gemm<T>(Op::N, Op::N, W.cols(), x.cols(), W.rows(), W.data(), W.outerStride(), dz.data(),
            dz.outerStride(), dx.data(), dx.outerStride());
  }
}

}  // namespace densa
