// The fused training loop: gather a minibatch through a shuffled order, forward through
// every layer, loss gradient, backward (NOTATION.md's recursion), optimizer update, all
// in C++ on parameters the caller owns. Workspaces are sized once, at construction,
// for the largest batch: no allocation per batch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dense.hpp"
#include "loss.hpp"
#include "optimizer.hpp"
#include "types.hpp"

namespace densa {

// One layer's parameters and optimizer state, as raw pointers into caller-owned memory.
// W is row-major n_out x n_in; b has n_out entries. State pointers are null when the
// optimizer does not use them (plain SGD has no velocity).
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
};

struct RunResult {
  double loss_sum = 0.0;      // Σ over completed batches of J_batch · batch size
  Index samples = 0;          // samples in completed batches
  Index batches = 0;          // completed batches (each one updated the parameters)
  bool diverged = false;      // a batch's loss was NaN or inf: stopped before its update
  Index diverged_batch = -1;  // index (within the epoch) of that batch
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
    const size_t K = layers_.size();
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
      dW_[j].resize(m, layers_[j].n_in);
      db_[j].resize(m);
    }
    db_tmp_.resize(widest);
  }

  Index n_in() const { return layers_.front().n_in; }
  Index n_out() const { return layers_.back().n_out; }

  // Runs batches [first_batch, first_batch + n_batches) of the epoch whose sample order
  // is `order` (n_order indices into X's N samples). X is the column-major n_in x N view
  // of the (N, n_in) training data; targets likewise n_out x N.
  RunResult run(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
                const std::int64_t* order, Index n_order, Index batch_size, Index first_batch,
                Index n_batches) {
    DENSA_REQUIRE(X.rows() == n_in(), "trainer: X has the wrong number of features");
    DENSA_REQUIRE(targets.rows() == n_out() && targets.cols() == X.cols(),
                  "trainer: targets do not match X or the output layer");
    DENSA_REQUIRE(batch_size > 0 && batch_size <= max_batch_, "trainer: batch size out of range");
    DENSA_REQUIRE(first_batch >= 0 && n_batches >= 0 && n_order >= 0,
                  "trainer: first_batch, n_batches and the order length must be >= 0");
    RunResult r;
    const Index total_batches = (n_order + batch_size - 1) / batch_size;
    if (first_batch >= total_batches) return r;  // nothing left of this epoch
    // min before adding: first_batch + n_batches could overflow Index.
    const Index end_batch = first_batch + std::min(n_batches, total_batches - first_batch);
    // Only the samples this run visits need checking: a full scan per chunk would cost
    // O(N) on every return to Python.
    const Index visit_end = std::min(n_order, end_batch * batch_size);
    for (Index i = first_batch * batch_size; i < visit_end; ++i) {
      DENSA_REQUIRE(order[i] >= 0 && order[i] < X.cols(),
                    "trainer: order holds an index out of range: order[" + std::to_string(i) +
                        "] = " + std::to_string(order[i]) + " but X has " +
                        std::to_string(X.cols()) + " samples");
    }
    for (Index bi = first_batch; bi < end_batch; ++bi) {
      const Index start = bi * batch_size;
      const Index bs = std::min(batch_size, n_order - start);
      const T loss = step(X, targets, order + start, bs);
      if (!std::isfinite(static_cast<double>(loss))) {
        r.diverged = true;
        r.diverged_batch = bi;
        return r;
      }
      r.loss_sum += static_cast<double>(loss) * static_cast<double>(bs);
      r.samples += bs;
      r.batches += 1;
    }
    return r;
  }

 private:
  // One minibatch: returns its loss J; updates the parameters only when J is finite.
  T step(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets, const std::int64_t* idx,
         Index bs) {
    const size_t K = layers_.size();
    for (Index k = 0; k < bs; ++k) {
      x_.col(k) = X.col(static_cast<Index>(idx[k]));
      t_.col(k) = targets.col(static_cast<Index>(idx[k]));
    }
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
    if (!std::isfinite(static_cast<double>(loss))) return loss;
    // Backward, j = K..1; dx of layer j is dy of layer j-1.
    for (size_t jj = K; jj-- > 0;) {
      const auto& L = layers_[jj];
      ConstWeightMap<T> W(L.W, L.n_out, L.n_in);
      // The first layer's dx is never needed (need_dx = false): its dz buffer only
      // stands in for the argument and is not written as dx.
      const bool need_dx = jj > 0;
      BatchRef<T> dx =
          need_dx ? BatchRef<T>(dy_[jj - 1].leftCols(bs)) : BatchRef<T>(dz_[jj].leftCols(bs));
      dense_backward<T>(W, input(jj, bs), z_[jj].leftCols(bs), dy_[jj].leftCols(bs), L.activation,
                        dz_[jj].leftCols(bs), dW_[jj], db_[jj], db_tmp_, dx, need_dx);
    }
    update();
    return loss;
  }

  ConstBatchRef<T> input(size_t j, Index bs) const {
    return j == 0 ? ConstBatchRef<T>(x_.leftCols(bs)) : ConstBatchRef<T>(y_[j - 1].leftCols(bs));
  }

  void update() {
    if (opt_.kind == OptimizerKind::adam) *opt_.step += 1;
    for (size_t j = 0; j < layers_.size(); ++j) {
      auto& L = layers_[j];
      const Index nW = L.n_out * L.n_in;
      VectorMap<T> W(L.W, nW), b(L.b, L.n_out);
      ConstVectorMap<T> gW(dW_[j].data(), nW), gb(db_[j].data(), L.n_out);
      if (opt_.kind == OptimizerKind::sgd) {
        const bool mom = opt_.sgd.momentum > 0.0;
        VectorMap<T> vW(mom ? L.state_W[0] : nullptr, mom ? nW : 0);
        VectorMap<T> vb(mom ? L.state_b[0] : nullptr, mom ? L.n_out : 0);
        sgd_step<T>(opt_.sgd, W, gW, vW);
        sgd_step<T>(opt_.sgd, b, gb, vb);
      } else {
        VectorMap<T> mW(L.state_W[0], nW), vW(L.state_W[1], nW);
        VectorMap<T> mb(L.state_b[0], L.n_out), vb(L.state_b[1], L.n_out);
        adam_step<T>(opt_.adam, *opt_.step, W, gW, mW, vW);
        adam_step<T>(opt_.adam, *opt_.step, b, gb, mb, vb);
      }
    }
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
};

}  // namespace densa
