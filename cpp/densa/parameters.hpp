// What the training loops (trainer.hpp, hidden_split.hpp) train: each layer's parameters
// and optimizer state as raw pointers into caller-owned memory, the optimizer's
// configuration, what a run reports, and the update of one slice of one tensor.
// Pure C++: nothing here knows Python.
#pragma once

#include <cstdint>
#include <vector>

#include "activation.hpp"
#include "optimizer.hpp"
#include "types.hpp"

namespace densa {

// One layer's parameters and optimizer state. W is row-major n_out x n_in; b has n_out
// entries. State pointers are null when the optimizer does not use them (plain SGD has
// no velocity).
template <class T>
struct LayerSlot {
  T* W = nullptr;
  T* b = nullptr;
  Index n_in = 0;
  Index n_out = 0;
  Activation activation = Activation::identity;
  T* state_W[2] = {nullptr, nullptr};  // SGD: velocity; Adam: m, v
  T* state_b[2] = {nullptr, nullptr};
};

enum class OptimizerKind { sgd, adam };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  SgdHyper sgd;
  AdamHyper adam;
  std::int64_t* step = nullptr;  // Adam's step count t, updated in place
  // scikit-learn's L2 penalty alpha: l2/(2 n_b)·Σ‖W‖² on each batch of n_b samples, so
  // that W's gradient (never b's) gains (l2 / n_b)·W before the optimizer sees it.
  double l2 = 0.0;
};

// Plain momentum SGD (the common case) folds v = μ v + dW into the dW product: the
// gradient of W is never stored, which saves a write and a read of a W-sized array per
// layer and batch (W3's first layer: 0.8 MB each), and its buffer.
inline bool fuses_momentum(const OptimizerConfig& opt) {
  return opt.kind == OptimizerKind::sgd && opt.sgd.momentum > 0.0 && !opt.sgd.nesterov &&
         opt.sgd.weight_decay == 0.0 && opt.l2 == 0.0;
}

// dW[i] += (l2 / n_b) · W[i] for i in [lo, hi): the L2 penalty's gradient (OptimizerConfig),
// one multiply and one add per element, as the reference computes it.
template <class T>
void add_l2(const OptimizerConfig& opt, Index batch_samples, T* grad, const T* W, Index lo,
            Index hi) {
  const T c = static_cast<T>(opt.l2 / static_cast<double>(batch_samples));
  for (Index i = lo; i < hi; ++i) grad[i] += c * W[i];
}

// Σ W[i]² over n values in double: the ‖W‖² of the L2 penalty (OptimizerConfig), for
// the loss a run reports. Eight interleaved partial sums, combined pairwise, in an order
// fixed by n alone: the result depends on the values, never on W's address (which
// Eigen's reductions would align to) or on the thread count.
template <class T>
double sum_of_squares(const T* W, Index n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const double w = static_cast<double>(W[i + j]);
      acc[j] += w * w;
    }
  }
  for (; i < n; ++i) {
    const double w = static_cast<double>(W[i]);
    acc[i & 7] += w * w;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

struct RunResult {
  double loss_sum = 0.0;      // Σ over completed batches of J_batch · batch size
  // Σ over completed batches of the L2 penalty's share of J_batch · batch size, l2/2·Σ‖W‖²
  // with the weights the batch saw (before its update): scikit-learn's loss_curve_ counts
  // it so. 0 without l2. loss_sum holds the data term only.
  double penalty_sum = 0.0;
  Index samples = 0;          // samples in completed batches
  Index batches = 0;          // completed batches (each one updated the parameters)
  bool diverged = false;      // a batch's loss was NaN or inf: stopped before its update
  Index diverged_batch = -1;  // index (within the epoch) of that batch
};

// Whole epochs run in one call (Trainer::run_epochs): the mean loss and wall time of each
// completed one; a divergence stops the run inside epoch loss_mean.size().
struct EpochsResult {
  std::vector<double> loss_mean;  // per completed epoch: Σ J_batch · batch size / samples
  std::vector<double> penalty_mean;  // per completed epoch: RunResult's penalty_sum / samples
  std::vector<double> seconds;    // per completed epoch
  bool diverged = false;
  Index diverged_batch = -1;  // within the epoch that diverged
};

// Updates entries [lo, hi) of L's W (which = 0) or b (which = 1) from the gradient
// `grad` of that whole tensor (unused for W under fused momentum, whose velocity already
// holds v = μ v + dW). adam_t is Adam's step count t after this update. Every element is
// updated by the same code wherever a slice starts (optimizer.hpp), so any cut of a
// tensor into slices gives the same bits.
// prescale (fused momentum only): leave μ v instead of v in W's velocity, for the next
// batch's product.
template <class T>
void update_slice(const OptimizerConfig& opt, bool fused_momentum, std::int64_t adam_t,
                  const LayerSlot<T>& L, int which, const T* grad, Index lo, Index hi,
                  bool prescale) {
  const Index len = hi - lo;
  T* p = (which == 0 ? L.W : L.b) + lo;
  T* const* state = which == 0 ? L.state_W : L.state_b;
  VectorMap<T> theta(p, len);
  if (which == 0 && fused_momentum) {
    // v = μ v + dW was formed by the dW product; what is left is θ -= lr v.
    sgd_apply_velocity<T>(opt.sgd, theta, VectorMap<T>(state[0] + lo, len), prescale);
    return;
  }
  ConstVectorMap<T> g(grad + lo, len);
  if (opt.kind == OptimizerKind::sgd) {
    const bool mom = opt.sgd.momentum > 0.0;
    sgd_step<T>(opt.sgd, theta, g, VectorMap<T>(mom ? state[0] + lo : nullptr, mom ? len : 0));
  } else {
    adam_step<T>(opt.adam, adam_t, theta, g, VectorMap<T>(state[0] + lo, len),
                 VectorMap<T>(state[1] + lo, len));
  }
}

// v = μ v for entries [lo, hi) of L's W velocity: the prescale that sgd_apply_velocity
// otherwise leaves, for the first batch of a run. The dW product then always adds with
// beta = 1: given beta = μ, OpenBLAS's kernels for small products fold μ C into their
// fused multiply-adds, which rounds differently from the separate μ v of the batches
// after, and a run cut in parts would no longer equal the whole.
template <class T>
void prescale_velocity(const OptimizerConfig& opt, const LayerSlot<T>& L, Index lo, Index hi) {
  const T mu = static_cast<T>(opt.sgd.momentum);
  T* v = L.state_W[0];
  for (Index i = lo; i < hi; ++i) v[i] *= mu;  // the same single rounding as prescale
}

}  // namespace densa
