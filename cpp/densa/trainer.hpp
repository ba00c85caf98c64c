// The fused training loop: gather a minibatch through a shuffled order, forward through
// every layer, loss gradient, backward (docs/backprop.md's recursion), optimizer update, all
// in C++ on parameters the caller owns. Workspaces are sized once, at construction,
// for the largest batch: no allocation per batch.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "dense.hpp"
#include "first_layer_split.hpp"
#include "float_mode.hpp"
#include "hidden_split.hpp"
#include "loss.hpp"
#include "momentum_update.hpp"
#include "optimizer.hpp"
#include "parameters.hpp"
#include "types.hpp"

namespace densa {

// Held for the whole of one Trainer::run or run_epochs call: a second call on the same
// trainer while one is in progress (another thread; Python releases its lock while the
// trainer runs) is refused with std::runtime_error instead of running. The two would
// share the trainer's workspaces and velocity_scaled_, and through HiddenSplit its
// signals and buffers: each resets what the other waits on, and one thread then waits
// forever. One compare-exchange per call, nothing per batch; released however the call
// ends, so that the trainer stays usable after any exception.
class RunGuard {
 public:
  RunGuard(std::atomic<bool>& busy, const char* call) : busy_(busy) {
    bool idle = false;
    // acquire / release: a later run, on any thread, sees everything this one wrote.
    if (!busy_.compare_exchange_strong(idle, true, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      throw std::runtime_error(std::string(call) +
                               ": this trainer is already running in another thread");
    }
  }
  RunGuard(const RunGuard&) = delete;
  RunGuard& operator=(const RunGuard&) = delete;
  ~RunGuard() { busy_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool>& busy_;
};

template <class T>
class Trainer {
 public:
  Trainer(std::vector<LayerSlot<T>> layers, Loss loss, OptimizerConfig opt, Index max_batch)
      : layers_(std::move(layers)), loss_(loss), opt_(opt), max_batch_(max_batch) {
    DENSA_REQUIRE(!layers_.empty(), "trainer: the network has no layers");
    DENSA_REQUIRE(max_batch_ > 0, "trainer: batch size must be positive");
    for (size_t j = 1; j < layers_.size(); ++j) {
      DENSA_REQUIRE(layers_[j].n_in == layers_[j - 1].n_out, "trainer: layer sizes do not chain");
    }
    if (opt_.kind == OptimizerKind::adam)
      DENSA_REQUIRE(opt_.step != nullptr, "trainer: no Adam step");
    fused_momentum_ = fuses_momentum(opt_);
    if (hidden_split_applies(layers_, max_batch_)) {
      // HiddenSplit keeps workspaces of its own; the ones below would go unused.
      split_ = std::make_unique<HiddenSplit<T>>(layers_, loss_, opt_, max_batch_);
      HiddenSplit<T>::wake_partner();
      return;
    }
    if (first_layer_split_applies(layers_, opt_, max_batch_)) {
      // FirstLayerSplit keeps workspaces of its own, as HiddenSplit does.
      first_split_ = std::make_unique<FirstLayerSplit<T>>(layers_, loss_, opt_, max_batch_);
      HiddenSplit<T>::wake_partner();
      return;
    }
    const size_t K = layers_.size();
    momentum_kernel_.assign(K, false);
    if constexpr (std::is_same_v<T, float>) {
      for (size_t j = 0; j < K; ++j)
        momentum_kernel_[j] = fused_momentum_ &&
                              use_momentum_kernel(layers_[j].n_out, layers_[j].n_in, max_batch_);
#if DENSA_HAVE_MOMENTUM_KERNEL
      if (std::find(momentum_kernel_.begin(), momentum_kernel_.end(), true) !=
          momentum_kernel_.end())
        momentum_scratch_ = MomentumScratch(max_batch_);
#endif
    }
    x_.resize(layers_[0].n_in, max_batch_);
    t_.resize(layers_.back().n_out, max_batch_);
    z_.resize(K);
    y_.resize(K);
    dz_.resize(K);
    dy_.resize(K);
    dW_.resize(K);
    db_.resize(K);
    Index widest = 0;
    for (size_t j = 0; j < K; ++j) {
      const Index m = layers_[j].n_out;
      widest = std::max(widest, m);
      z_[j].resize(m, max_batch_);
      y_[j].resize(m, max_batch_);
      dz_[j].resize(m, max_batch_);
      dy_[j].resize(m, max_batch_);
      if (!fused_momentum_) dW_[j].resize(m, layers_[j].n_in);
      db_[j].resize(m);
    }
    db_tmp_.resize(widest);
  }

  // Whether this network trains through HiddenSplit (both threads on one small network).
  bool splits_hidden_layer() const { return split_ != nullptr; }

  // Whether this network trains through FirstLayerSplit (both threads, the first layer's
  // units split between them).
  bool splits_first_layer() const { return first_split_ != nullptr; }

  // Whether layer j's momentum steps run on densa's kernel (momentum_update.hpp); never
  // in HiddenSplit, which has its own loop; in FirstLayerSplit the first layer's, where
  // the general loop's would.
  bool uses_momentum_kernel(size_t j) const {
    if (first_split_) return j == 0 && first_split_->momentum_kernel();
    return j < momentum_kernel_.size() && momentum_kernel_[j];
  }

  Index n_in() const { return layers_.front().n_in; }
  Index n_out() const { return layers_.back().n_out; }

  // Runs batches [first_batch, first_batch + n_batches) of the epoch whose sample order
  // is `order` (n_order indices into X's N samples). X is the column-major n_in x N view
  // of the (N, n_in) training data; targets likewise n_out x N.
  // Refused (std::runtime_error) while another call runs this trainer (RunGuard).
  RunResult run(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                const std::int64_t* order, Index n_order, Index batch_size, Index first_batch,
                Index n_batches) {
    const RunGuard guard(busy_, "Trainer.run");
    const ScopedTrainingMode mode;  // subnormals flushed, traps off (float_mode.hpp)
    reserve_momentum_scratch();
    try {
      return run_batches(X, targets, order, n_order, batch_size, first_batch, n_batches);
    } catch (...) {
      give_back_velocity();
      throw;
    }
  }

  // Runs n_epochs whole epochs, epoch e visiting the samples in orders[e·n_order ...
  // (e+1)·n_order). For networks whose epoch takes well under the ~0.1 s that the caller
  // wants between returns, one call per epoch would spend more in the caller's bookkeeping
  // than in training (digits: ~0.1 ms of Python against ~0.4 ms of training per epoch).
  // Refused like run while another call runs this trainer.
  EpochsResult run_epochs(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                          const std::int64_t* orders, Index n_epochs, Index n_order,
                          Index batch_size) {
    const RunGuard guard(busy_, "Trainer.run_epochs");
    const ScopedTrainingMode mode;
    reserve_momentum_scratch();
    DENSA_REQUIRE(n_epochs >= 0 && n_order > 0, "trainer: need n_epochs >= 0 and samples");
    check_fit(X, targets, batch_size);
    // Every epoch's indices before the first epoch runs: a refused call trains nothing.
    check_order(orders, 0, n_epochs * n_order, X.cols(), n_order);
    EpochsResult out;
    out.loss_mean.reserve(static_cast<size_t>(n_epochs));
    out.seconds.reserve(static_cast<size_t>(n_epochs));
    const Index per_epoch = (n_order + batch_size - 1) / batch_size;
    if (split_ || first_split_)
      return run_epochs_split(X, targets, orders, n_epochs, n_order, batch_size);
    for (Index e = 0; e < n_epochs; ++e) {
      const auto t0 = std::chrono::steady_clock::now();
      RunResult r;
      try {
        r = train_batches(X, targets, orders + e * n_order, n_order, batch_size, 0, per_epoch);
      } catch (...) {
        give_back_velocity();
        throw;
      }
      if (r.diverged) {
        out.diverged = true;
        out.diverged_batch = r.diverged_batch;
        return out;
      }
      const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
      out.loss_mean.push_back(r.loss_sum / static_cast<double>(r.samples));
      out.penalty_mean.push_back(r.penalty_sum / static_cast<double>(r.samples));
      out.seconds.push_back(dt.count());
    }
    return out;
  }

  // run_epochs' checks of its data and batch size, for a caller that must know before
  // anything else happens that run_epochs will not refuse them (the bindings' fit).
  void check_fit(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                 Index batch_size) const {
    check_batch_size(batch_size);
    DENSA_REQUIRE(X.rows() == n_in(), "trainer: X has the wrong number of features");
    DENSA_REQUIRE(targets.rows() == n_out() && targets.cols() == X.cols(),
                  "trainer: targets do not match X or the output layer");
  }

 private:
  // run's checks and work, under the caller's RunGuard.
  RunResult run_batches(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                        const std::int64_t* order, Index n_order, Index batch_size,
                        Index first_batch, Index n_batches) {
    DENSA_REQUIRE(X.rows() == n_in(), "trainer: X has the wrong number of features");
    DENSA_REQUIRE(targets.rows() == n_out() && targets.cols() == X.cols(),
                  "trainer: targets do not match X or the output layer");
    check_batch_size(batch_size);
    DENSA_REQUIRE(first_batch >= 0 && n_batches >= 0 && n_order >= 0,
                  "trainer: first_batch, n_batches and the order length must be >= 0");
    const Index total_batches = (n_order + batch_size - 1) / batch_size;
    if (first_batch >= total_batches) return {};  // nothing left of this epoch
    // min before adding: first_batch + n_batches could overflow Index.
    const Index end_batch = first_batch + std::min(n_batches, total_batches - first_batch);
    // Only the samples this run visits need checking: a full scan per chunk would cost
    // O(N) on every return to Python.
    const Index visit_end = std::min(n_order, end_batch * batch_size);
    check_order(order, first_batch * batch_size, visit_end, X.cols());
    return train_batches(X, targets, order, n_order, batch_size, first_batch, end_batch);
  }

  // Batches [first_batch, end_batch) of an order already checked (run_batches, or
  // run_epochs for all its epochs at once).
  RunResult train_batches(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                          const std::int64_t* order, Index n_order, Index batch_size,
                          Index first_batch, Index end_batch) {
    RunResult r;
    if (split_ || first_split_) {  // which leave velocities unscaled (v, never μ v)
      return run_split(X, targets, order, 1, n_order, batch_size, first_batch, end_batch).epochs[0];
    }
    for (Index bi = first_batch; bi < end_batch; ++bi) {
      const Index start = bi * batch_size;
      const Index bs = std::min(batch_size, n_order - start);
      const double penalty = l2_penalty();  // with the weights before this batch's update
      const T loss = step(X, targets, order + start, bs, bi + 1 == end_batch);
      if (!std::isfinite(static_cast<double>(loss))) {
        r.diverged = true;
        r.diverged_batch = bi;
        return r;
      }
      r.loss_sum += static_cast<double>(loss) * static_cast<double>(bs);
      r.penalty_sum += penalty;
      r.samples += bs;
      r.batches += 1;
    }
    return r;
  }

  // The L2 penalty's share of a batch's J · batch size, l2/2·Σ‖W‖² over every layer's W
  // (RunResult::penalty_sum); 0 without l2. One pass over the weights per batch, on one
  // thread in a fixed order (sum_of_squares), only when l2 is set.
  double l2_penalty() const {
    if (opt_.l2 == 0.0) return 0.0;
    double squares = 0.0;
    for (const auto& L : layers_) squares += sum_of_squares<T>(L.W, L.n_out * L.n_in);
    return 0.5 * opt_.l2 * squares;
  }

  void check_batch_size(Index batch_size) const {
    DENSA_REQUIRE(batch_size > 0 && batch_size <= max_batch_,
                  "trainer: batch size out of range: " + std::to_string(batch_size) +
                      " not in [1, " + std::to_string(max_batch_) + "] (max_batch)");
  }

  // One minibatch: returns its loss J; updates the parameters only when J is finite.
  // `last` marks the last batch of a run, after which the caller reads the state.
  T step(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets, const std::int64_t* idx,
         Index bs, bool last) {
    const size_t K = layers_.size();
    // The minibatch, gathered in column blocks on the pool (reads from all over X: the
    // two threads keep twice as many cache misses in flight).
    for_column_blocks(bs, 4 * bs * (X.rows() + targets.rows()), [&](Index lo, Index hi) {
      for (Index k = lo; k < hi; ++k) {
        const Index i = sample_index(idx[k], X.cols());
        x_.col(k) = X.col(i);
        t_.col(k) = targets.col(i);
      }
    });
    // Forward: z_j = W_{j-1} y_{j-1} + b_{j-1}, y_j = f_j(z_j).
    for (size_t j = 0; j < K; ++j) {
      const auto& L = layers_[j];
      ConstWeightMap<T> W(L.W, L.n_out, L.n_in);
      ConstVectorMap<T> b(L.b, L.n_out);
      dense_forward<T>(W, b, input(j, bs), L.activation, z_[j].leftCols(bs), y_[j].leftCols(bs));
    }
    // dy_K = dJ/dy_K, fused with the loss value.
    BatchRef<T> dyK = dy_[K - 1].leftCols(bs);
    const T loss = loss_forward_backward<T>(loss_, y_[K - 1].leftCols(bs), t_.leftCols(bs), &dyK);
    if (!std::isfinite(static_cast<double>(loss))) {
      if (velocity_scaled_) unscale_velocity();  // the caller gets v back, not μ v
      return loss;
    }
    // v = μ v first (parameters.hpp says why); the momentum kernel scales v itself.
    if (fused_momentum_ && !velocity_scaled_) {
      for (size_t j = 0; j < K; ++j) {
        if (momentum_kernel_[j]) continue;
        const auto& L = layers_[j];
        const Index nW = L.n_out * L.n_in;
        for_column_blocks(nW, nW,
                          [&](Index lo, Index hi) { prescale_velocity<T>(opt_, L, lo, hi); });
      }
      velocity_scaled_ = true;
    }
    // Backward, j = K..1; dx of layer j is dy of layer j-1.
    for (size_t jj = K; jj-- > 0;) {
      const auto& L = layers_[jj];
      ConstWeightMap<T> W(L.W, L.n_out, L.n_in);
      // The first layer's dx is never needed (need_dx = false): its dz buffer only
      // stands in for the argument and is not written as dx.
      const bool need_dx = jj > 0;
      BatchRef<T> dx =
          need_dx ? BatchRef<T>(dy_[jj - 1].leftCols(bs)) : BatchRef<T>(dz_[jj].leftCols(bs));
      // Fused momentum: the velocity takes dW's place, v = dz yᵀ + μ v (see update()).
      WeightMap<T> dW = fused_momentum_ ? WeightMap<T>(L.state_W[0], L.n_out, L.n_in)
                                        : WeightMap<T>(dW_[jj].data(), L.n_out, L.n_in);
      const T beta = fused_momentum_ ? T(1) : T(0);  // v = dz yᵀ + (μ v), or dW = dz yᵀ
      dense_backward<T>(W, input(jj, bs), z_[jj].leftCols(bs), dy_[jj].leftCols(bs), L.activation,
                        dz_[jj].leftCols(bs), dW, db_[jj], db_tmp_, dx, need_dx, beta,
                        !momentum_kernel_[jj]);
      if (momentum_kernel_[jj]) momentum_step(L, input(jj, bs), dz_[jj].leftCols(bs));
    }
    update(!last, bs);
    return loss;
  }

  // run_epochs through HiddenSplit (its orders checked by run_epochs): all epochs run in
  // one call, so that the second thread is woken once, not once per epoch.
  EpochsResult run_epochs_split(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                                const std::int64_t* orders, Index n_epochs, Index n_order,
                                Index batch_size) {
    const Index per_epoch = (n_order + batch_size - 1) / batch_size;
    SplitRun s = run_split(X, targets, orders, n_epochs, n_order, batch_size, 0, per_epoch);
    EpochsResult out;
    for (size_t e = 0; e < s.seconds.size(); ++e) {
      const double samples = static_cast<double>(s.epochs[e].samples);
      out.loss_mean.push_back(s.epochs[e].loss_sum / samples);
      out.penalty_mean.push_back(s.epochs[e].penalty_sum / samples);
      out.seconds.push_back(s.seconds[e]);
    }
    if (s.seconds.size() < s.epochs.size() && s.epochs[s.seconds.size()].diverged) {
      out.diverged = true;
      out.diverged_batch = s.epochs[s.seconds.size()].diverged_batch;
    }
    return out;
  }

  // HiddenSplit's or FirstLayerSplit's run, whichever this trainer has.
  SplitRun run_split(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                     const std::int64_t* orders, Index n_epochs, Index n_order, Index batch_size,
                     Index first_batch, Index end_batch) {
    if (split_)
      return split_->run(X, targets, orders, n_epochs, n_order, batch_size, first_batch, end_batch);
    return first_split_->run(X, targets, orders, n_epochs, n_order, batch_size, first_batch,
                             end_batch);
  }

  // The momentum kernel's buffers for as many slabs as any kernel layer's product can now
  // be cut into (the slab policy is a tuning hook, which may have changed since the
  // trainer was built): grown here, before a run, so that a failed allocation never
  // leaves a batch's update half-applied.
  void reserve_momentum_scratch() {
#if DENSA_HAVE_MOMENTUM_KERNEL
    std::int64_t slabs = 0;
    for (size_t j = 0; j < momentum_kernel_.size(); ++j) {
      if (!momentum_kernel_[j]) continue;
      // Slab counts grow with the number of samples: max_batch's is the most.
      const SlabPlan plan = plan_slabs(layers_[j].n_in, layers_[j].n_out, max_batch_, Split::cols);
      slabs = std::max(slabs, plan.count);
    }
    if (slabs > momentum_scratch_.slabs()) momentum_scratch_.reserve(max_batch_, slabs);
#endif
  }

  // v = μ v + dz xᵀ and W −= lr v in one pass (momentum_update.hpp): after
  // dense_backward, whose dx read W as it was.
  void momentum_step(const LayerSlot<T>& L, const ConstBatchRef<T>& x, const ConstBatchRef<T>& dz) {
#if DENSA_HAVE_MOMENTUM_KERNEL
    if constexpr (std::is_same_v<T, float>) {
      momentum_update(L.n_out, L.n_in, x.cols(), x.data(), x.outerStride(), dz.data(),
                      dz.outerStride(), L.W, L.state_W[0], static_cast<float>(opt_.sgd.lr),
                      static_cast<float>(opt_.sgd.momentum), momentum_scratch_);
      return;
    }
#endif
    (void)L, (void)x, (void)dz;
    fail("trainer: the momentum kernel is not in this build");  // momentum_kernel_ is all false
  }

  // Every entry of order[lo, hi) must index one of X's n samples. row > 0: the orders
  // of run_epochs, rows of that length, named orders[e, i] (as the reference names them,
  // _trainer_checks.py).
  static void check_order(const std::int64_t* order, Index lo, Index hi, Index n,
                          Index row = 0) {
    for (Index i = lo; i < hi; ++i) {
      if (order[i] >= 0 && order[i] < n) continue;
      const std::string where = row > 0 ? "orders[" + std::to_string(i / row) + ", " +
                                               std::to_string(i % row) + "]"
                                         : "order[" + std::to_string(i) + "]";
      fail("trainer: order holds an index out of range: " + where +
                                  " = " + std::to_string(order[i]) + " but X has " +
                                  std::to_string(n) + " samples");
    }
  }

  ConstBatchRef<T> input(size_t j, Index bs) const {
    return j == 0 ? ConstBatchRef<T>(x_.leftCols(bs)) : ConstBatchRef<T>(y_[j - 1].leftCols(bs));
  }

  // prescale (fused momentum only): leave μ v instead of v in the velocity arrays, for
  // the next batch of this run.
  void update(bool prescale, Index bs) {
    if (opt_.kind == OptimizerKind::adam) *opt_.step += 1;
    prescale = prescale && fused_momentum_;
    for (size_t j = 0; j < layers_.size(); ++j) {
      auto& L = layers_[j];
      const Index nW = L.n_out * L.n_in;
      // W's update is cut into blocks on the pool; every element is updated by the same
      // code wherever a block starts (optimizer.hpp), so any cut gives the same bits.
      // The momentum kernel has updated W already (momentum_step).
      if (!momentum_kernel_[j]) {
        for_column_blocks(nW, 2 * nW, [&](Index lo, Index hi) {
          // The L2 penalty's gradient, never under fused momentum (fuses_momentum).
          if (opt_.l2 != 0.0) add_l2<T>(opt_, bs, dW_[j].data(), L.W, lo, hi);
          update_tensor(L, 0, j, lo, hi, prescale);
        });
      }
      update_tensor(L, 1, j, 0, L.n_out, false);
    }
    velocity_scaled_ = prescale;
  }

  // A run that stops on an exception (a batch whose order changed under it, sample_index)
  // returns the velocities as v, as a divergence does: after the last completed batch
  // they hold μ v (velocity_scaled_), which the caller would otherwise keep as v.
  void give_back_velocity() {
    if (velocity_scaled_) unscale_velocity();
  }

  // v = (μ v) / μ for the velocities left prescaled: within one rounding of the v that μ v
  // was formed from (only after a divergence or an exception, either of which stops the
  // run). The layers on the momentum kernel hold v already.
  void unscale_velocity() {
    const T mu = static_cast<T>(opt_.sgd.momentum);
    for (size_t j = 0; j < layers_.size(); ++j) {
      const auto& L = layers_[j];
      if (!momentum_kernel_[j]) VectorMap<T>(L.state_W[0], L.n_out * L.n_in).array() /= mu;
    }
    velocity_scaled_ = false;
  }

  // Updates entries [lo, hi) of layer j's W (which = 0) or b (which = 1).
  void update_tensor(const LayerSlot<T>& L, int which, size_t j, Index lo, Index hi,
                     bool prescale) {
    const T* grad = which == 0 ? dW_[j].data() : db_[j].data();
    update_slice<T>(opt_, fused_momentum_, opt_.step ? *opt_.step : 0, L, which, grad, lo, hi,
                    prescale);
  }

  std::vector<LayerSlot<T>> layers_;
  Loss loss_;
  OptimizerConfig opt_;
  Index max_batch_;
  Matrix<T> x_, t_;
  std::vector<Matrix<T>> z_, y_, dz_, dy_;
  std::vector<RowMatrix<T>> dW_;
  std::vector<Vector<T>> db_;
  Vector<T> db_tmp_;
  bool fused_momentum_ = false;
  // Per layer: W's momentum steps on densa's kernel (float32, AVX2 builds,
  // use_momentum_kernel). Those layers' velocities always hold v itself, never μ v: what
  // velocity_scaled_ says is of the other layers.
  std::vector<bool> momentum_kernel_;
#if DENSA_HAVE_MOMENTUM_KERNEL
  MomentumScratch momentum_scratch_;  // the kernel's buffers, sized at construction
#endif
  // Fused momentum keeps μ v, not v, in the velocity arrays between the batches of one
  // run: the next dW product then adds to it with beta = 1, for which OpenBLAS skips the
  // pass it otherwise makes over C to scale it by beta (on W3, 12% of all cycles went
  // to that pass). The last batch of a run leaves v itself, which the caller reads.
  bool velocity_scaled_ = false;
  std::unique_ptr<HiddenSplit<T>> split_;  // set when hidden_split_applies
  std::unique_ptr<FirstLayerSplit<T>> first_split_;  // set when first_layer_split_applies
  std::atomic<bool> busy_{false};          // a run or run_epochs call is in progress
};

}  // namespace densa
