// Training a network of three or more dense layers whose first layer is wide (W3's
// 784-256-128-10) on two threads, by splitting the first layer's units between them.
// Pure C++: nothing here knows Python.
//
// Why: the general loop (trainer.hpp) cuts each of a batch's products into slabs on the
// pool, ten hand-overs per W3 batch, and at each the faster thread waits for the slower;
// the small second-layer products and the output layer scale worst. Two threads then
// ran W3 at ~1.8x one thread (docs/performance.md). Here each thread owns half of the
// first layer and waits twice per batch.
//
// How: team t (t = 0, 1) owns first-layer units [r_t, r_{t+1}): their rows of W1, b1, z1,
// y1, dz1, and the same columns of W2 (layer 2 reads y1 through them), with the same
// slices of the velocities. Per batch, each team
//   A  gathers the whole minibatch x (its own copy, unless gathered ahead, below) and
//      computes z1_t = W1[r_t:r_{t+1}, :] x + b1_t, y1_t = f1(z1_t) and its share of
//      layer 2's product, P_t = W2[:, r_t:r_{t+1}] y1_t; then publishes P_t. The first
//      team to get there
//   U  waits for the other's P_t and runs the upper network for both: z2 = (P_0 + P_1)
//      + b2, y2 = f2(z2), the layers above forward, the loss, their backward steps and
//      updates, dy2 = W3ᵀ dz3, dz2 = dy2 ⊙ f2'(z2) and b2's update; and publishes dz2.
//      The other team gathers its next minibatch meanwhile and waits for dz2;
//   B  from its own slices only: dy1_t = W2[:, r_t:r_{t+1}]ᵀ dz2, its columns of dW2,
//      dz1_t = dy1_t ⊙ f1'(z1_t), db1_t, its rows of dW1, and the updates of all of these
//      (W1's rows in one pass with their dW1 on the momentum kernel, where it applies).
// The parameters of the upper network (b2, layers 3..K) are read and written in U only
// (its L2 penalty counted apart from the teams', TeamJob::penalty),
// which runs for one batch after the other (each U waits for both teams' P_t of its batch,
// published after their B of the batch before). U's buffers, P_t and x alternate between
// two by batch parity, as hidden_split.hpp's do. The schedule (who waits for whom, one
// thread or two) is two_teams.hpp's, shared with hidden_split.hpp.
//
// Where (first_layer_split_applies): a first layer large enough that the general loop
// would cut its products into slabs, and an upper network small beside it (it runs on one
// thread). Any optimizer, either dtype, except that momentum SGD splits only where W1's
// rows take the momentum kernel's single pass (float32, momentum_update.hpp) and no other
// layer would have.
//
// Results: every element is computed by the same code on the same operands whoever
// runs it, and the split depends on the shape only. With one thread, when the pool is
// busy, or where the process may use one CPU only, one thread runs both teams' phases in
// turn (team 1 reusing team 0's minibatch): the same bits as two threads. Only z2's sum
// over the first layer's units is formed as two partial products plus their sum, so these
// networks round a little differently from the general loop (within the reference tests'
// tolerances, like any change of summation order).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "dense.hpp"
#include "gemm.hpp"
#include "loss.hpp"
#include "momentum_update.hpp"
#include "parallel.hpp"
#include "parameters.hpp"
#include "teamwork.hpp"
#include "two_teams.hpp"
#include "types.hpp"

namespace densa {

// Off only to compare with the general loop (tests, benchmarks); on by default. Read
// when a Trainer is built. Atomic: Python may flip it while another thread trains.
inline std::atomic<bool>& first_layer_split_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// The first team's share of a first layer of h units: half, on a multiple of 8 (whole
// SIMD vectors of rows).
inline Index first_layer_half(Index h) { return std::min(h, (h / 2 + 4) / 8 * 8); }

// Whether W1's rows step on the momentum kernel in FirstLayerSplit: under the same rule as
// the general loop's W1 (use_momentum_kernel), for each team's rows.
template <class T>
bool first_layer_split_kernel(const LayerSlot<T>& L1, const OptimizerConfig& opt, Index max_batch) {
  const Index half = first_layer_half(L1.n_out);
  return std::is_same_v<T, float> && fuses_momentum(opt) &&
         use_momentum_kernel(half, L1.n_in, max_batch) &&
         use_momentum_kernel(L1.n_out - half, L1.n_in, max_batch);
}

// Whether a network of these layers trains through FirstLayerSplit. A rule of the shapes
// and the optimizer only, never of the thread count.
template <class T>
bool first_layer_split_applies(const std::vector<LayerSlot<T>>& layers, const OptimizerConfig& opt,
                               Index max_batch) {
  if (!first_layer_split_enabled().load(std::memory_order_relaxed) || layers.size() < 3)
    return false;
  const Index n = layers[0].n_in, h = layers[0].n_out;
  if (h < 32) return false;
  // Momentum SGD (fused: dW formed in the velocity) only where W1's rows take the momentum
  // kernel and no other layer would have: otherwise the dW products run with beta = μ,
  // for which OpenBLAS scales the velocity in a pass of its own, where the general loop
  // keeps μ v between batches to avoid it (trainer.hpp). W3 in float64: 1.23x slower.
  if (fuses_momentum(opt)) {
    if (!first_layer_split_kernel(layers[0], opt, max_batch)) return false;
    for (size_t j = 1; j < layers.size(); ++j)
      if (use_momentum_kernel(layers[j].n_out, layers[j].n_in, max_batch)) return false;
  }
  // Large enough that the general loop would use both threads on the first layer.
  if (plan_slabs(h, max_batch, n, Split::rows).count < 2) return false;
  // The upper network (one thread) small beside the first two layers' split work: at most
  // an eighth of the first layer's multiply-adds.
  double upper = 0.0;
  for (size_t j = 2; j < layers.size(); ++j)
    upper += static_cast<double>(layers[j].n_in) * static_cast<double>(layers[j].n_out);
  return 8.0 * upper <= static_cast<double>(n) * static_cast<double>(h);
}

template <class T>
class FirstLayerSplit : public TwoTeams<FirstLayerSplit<T>, T> {
 public:
  using Job = TeamJob<T>;

  FirstLayerSplit(const std::vector<LayerSlot<T>>& layers, Loss loss, const OptimizerConfig& opt,
                  Index max_batch)
      : layers_(layers), loss_(loss), opt_(opt), fused_(fuses_momentum(opt)) {
    const LayerSlot<T>&L1 = layers_[0], &L2 = layers_[1];
    const Index n = L1.n_in, h = L1.n_out, o2 = L2.n_out;
#if DENSA_USE_BLAS
    // The teams call the BLAS directly (product), not through gemm(), which checks these.
    for (Index size : {n, h, o2, max_batch}) detail::blas_int(size, "a layer size");
    init_gemm_backend();
#endif
    bounds_ = {0, first_layer_half(h), h};
    // W1's rows on the momentum kernel (for momentum SGD, always: the rule), else a dW1
    // product and an update pass.
    kernel_ = first_layer_split_kernel(L1, opt_, max_batch);
    this->size_inputs(n, max_batch);
    for (int t = 0; t < 2; ++t) {
      Team& tm = teams_[t];
      const Index m = rows(t), r = bounds_[t];
      for (auto* a : {&tm.z1, &tm.y1, &tm.dy1, &tm.dz1}) a->resize(m, max_batch);
      tm.db.resize(m, 1);
      tm.dW1.resize(fused_ ? 0 : m * n, 1);  // fused momentum forms dW in the velocity
      tm.dW2.resize(fused_ ? 0 : o2 * m, 1);
      // W1's rows in place (whole rows, which the other team never touches); b1's entries
      // and W2's columns (o2 x m, row-major) as private copies, with their optimizer state.
      tm.rows1 = L1;
      tm.rows1.W = L1.W + r * n;
      tm.rows1.n_out = m;
      for (int k = 0; k < 2; ++k)
        if (L1.state_W[k]) tm.rows1.state_W[k] = L1.state_W[k] + r * n;
      tm.bias1 = private_slot(L1, m, 0, tm.bias1_mem);
      tm.out = private_slot(L2, o2, m, tm.out_mem);
#if DENSA_HAVE_MOMENTUM_KERNEL
      if (kernel_) tm.scratch = MomentumScratch(max_batch);
#endif
      for (auto& p : partial_[t]) p.resize(o2, max_batch);
    }
    const size_t K = layers_.size();
    for (Upper& u : upper_) {
      u.target.resize(layers_.back().n_out, max_batch);
      u.z.resize(K);
      u.y.resize(K);
      u.dy.resize(K);
      u.dz.resize(K);
      for (size_t j = 1; j < K; ++j) {
        for (auto* a : {&u.z[j], &u.y[j], &u.dy[j], &u.dz[j]})
          a->resize(layers_[j].n_out, max_batch);
      }
    }
    dW_.resize(K);
    Index widest = 0;
    for (size_t j = 1; j < K; ++j) {
      widest = std::max(widest, layers_[j].n_out);
      if (j >= 2 && !fused_) dW_[j].resize(layers_[j].n_out, layers_[j].n_in);
    }
    db_.resize(widest);
    db_tmp_.resize(widest);
  }

  // Epochs e = 0 .. n_epochs-1, each visiting batches [first_batch, end_batch) of the
  // order at orders + e·n_order, as Trainer::run would, batch for batch. Stops before
  // the update of the first batch whose loss is not finite. Momentum velocities hold v
  // on entry and on return, never μ v.
  SplitRun run(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
               const std::int64_t* orders, Index n_epochs, Index n_order, Index batch_size,
               Index first_batch, Index end_batch) {
    Job job{X, targets, orders, n_epochs, n_order, batch_size, first_batch, end_batch};
    step0_ = opt_.kind == OptimizerKind::adam ? *opt_.step : 0;
    this->run_teams(job);
    if (opt_.kind == OptimizerKind::adam) *opt_.step = step0_ + job.updates;
    return std::move(job.out);
  }

  // Whether W1's rows step on the momentum kernel (momentum_update.hpp).
  bool momentum_kernel() const { return kernel_; }

 private:
  friend class TwoTeams<FirstLayerSplit<T>, T>;  // calls the phases below

  struct Team {
    LineBuffer<T> z1, y1, dy1, dz1, db, dW1, dW2;
    LayerSlot<T> rows1;  // W1's rows r_t.. in the caller's arrays, with their state
    // Private copies (b1's entries; W2's columns, o2 x m row-major) with their state.
    LayerSlot<T> bias1, out;
    SliceMem<T> bias1_mem[2], out_mem[2];  // [0]: W (or b), [1]: the bias
#if DENSA_HAVE_MOMENTUM_KERNEL
    MomentumScratch scratch;  // W1's momentum kernel's buffers
#endif
  };

  // The upper network of one batch: layers 2..K's z, y, dy, dz (index j = layer j + 1;
  // index 0 unused), the targets and the loss.
  struct Upper {
    LineBuffer<T> target;
    std::vector<LineBuffer<T>> z, y, dy, dz;
    T loss = T(0);
  };

  Index rows(int t) const { return bounds_[t + 1] - bounds_[t]; }

  // One product on the calling thread (gemm.hpp's slab): a team's products are never cut
  // into slabs, whose bounds (and so whose rounding) depend on the machine's CPU count.
  static void product(Op ta, Op tb, Index M, Index N, Index K, const T* A, Index lda, const T* B,
                      Index ldb, T* C, Index ldc, T beta = T(0)) {
    detail::gemm_slab<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta,
                         detail::gemm_tn_computes(ta, tb, M, N, K, beta));
  }

  // Team t's b1 entries and W2 columns, with their optimizer state: into its private
  // copies (in), or back to the caller's arrays (out), which happens however a run ends.
  void copy_slices(int t, bool in) noexcept {
    Team& tm = teams_[t];
    const LayerSlot<T>&L1 = layers_[0], &L2 = layers_[1];
    const Index h = L1.n_out, o2 = L2.n_out, r = bounds_[t], m = rows(t);
    copy_slice_runs(in, L1.b + r, tm.bias1.b, 1, m, 0);
    copy_slice_runs(in, L2.W + r, tm.out.W, o2, m, h);
    for (int k = 0; k < 2; ++k) {
      copy_slice_runs(in, L1.state_b[k] ? L1.state_b[k] + r : nullptr, tm.bias1.state_b[k], 1, m,
                      0);
      copy_slice_runs(in, L2.state_W[k] ? L2.state_W[k] + r : nullptr, tm.out.state_W[k], o2, m, h);
    }
  }

  // Phase A of batch bi of epoch e (the k-th of the run) for team t.
  // reuse: take team 0's gathered minibatch (one thread running both teams in turn).
  void phase_a(Job& job, int t, Index e, Index bi, std::int64_t k, bool reuse) {
    Team& tm = teams_[t];
    const LayerSlot<T>& L1 = layers_[0];
    const Index bs = job.batch_len(bi), n = L1.n_in, o2 = layers_[1].n_out, m = rows(t);
    LineBuffer<T>& P = partial_[t][k & 1];
    prefetch_for_write(P.data(), static_cast<std::size_t>(o2 * bs) * sizeof(T));
    const T* x = this->minibatch(job, t, e, bi, k, reuse);
    // z1_t = W1[r:r+m, :] x + b1_t;  y1_t = f1(z1_t)
    BatchRef<T> z1 = tm.z1.cols(bs), y1 = tm.y1.cols(bs);
    product(Op::T, Op::N, m, bs, n, tm.rows1.W, n, x, n, z1.data(), m);
    bias_activation<T>(L1.activation, ConstVectorMap<T>(tm.bias1.b, m), z1, y1);
    // P_t = W2[:, r:r+m] y1_t  (o2 x bs; the private copy is o2 x m row-major)
    product(Op::T, Op::N, o2, bs, m, tm.out.W, m, y1.data(), m, P.data(), o2);
  }

  // The batch's targets, before the team computing U waits for the other's P_t.
  void prepare_shared(Job& job, Index e, Index bi, std::int64_t k) {
    this->gather(job.targets, job.orders + job.batch_start(e, bi), job.batch_len(bi),
                 upper_[k & 1].target.data());
  }

  // Phase U of batch bi of epoch e (the k-th of the run), for both teams; see the header.
  // Updates nothing when the loss is not finite.
  void shared_phase(Job& job, Index e, Index bi, std::int64_t k) {
    Upper& u = upper_[k & 1];
    const size_t K = layers_.size();
    const Index bs = job.batch_len(bi), o2 = layers_[1].n_out;
    auto mat = [bs](const LineBuffer<T>& buf) { return buf.cols(bs); };
    // z2 = (P_0 + P_1) + b2;  y2 = f2(z2)
    {
      const T* p0 = partial_[0][k & 1].data();
      const T* p1 = partial_[1][k & 1].data();
      const std::size_t bytes = static_cast<std::size_t>(o2 * bs) * sizeof(T);
      prefetch_for_read(p0, bytes);
      prefetch_for_read(p1, bytes);
      const T* b2 = layers_[1].b;
      T* z2 = u.z[1].data();
      for (Index c = 0; c < bs; ++c) {
        for (Index i = 0; i < o2; ++i) z2[c * o2 + i] = (p0[c * o2 + i] + p1[c * o2 + i]) + b2[i];
      }
      activation_f<T>(layers_[1].activation, mat(u.z[1]), mat(u.y[1]));
    }
    for (size_t j = 2; j < K; ++j) {
      const LayerSlot<T>& L = layers_[j];
      dense_forward<T>(ConstWeightMap<T>(L.W, L.n_out, L.n_in), ConstVectorMap<T>(L.b, L.n_out),
                       mat(u.y[j - 1]), L.activation, mat(u.z[j]), mat(u.y[j]));
    }
    BatchRef<T> dyK = mat(u.dy[K - 1]);
    u.loss = loss_forward_backward<T>(loss_, mat(u.y[K - 1]), mat(u.target), &dyK);
    if (!std::isfinite(static_cast<double>(u.loss))) return;
    const std::int64_t adam_t = step0_ + k + 1;  // every batch before k updated
    // Layers K..3: dW (or, under fused momentum, v = μ v + dz yᵀ with beta = μ), db, dy of
    // the layer below; then their updates.
    const T beta = fused_ ? static_cast<T>(opt_.sgd.momentum) : T(0);
    for (size_t j = K; j-- > 2;) {
      const LayerSlot<T>& L = layers_[j];
      const Index nW = L.n_out * L.n_in;
      auto db = db_.head(L.n_out);
      T* dW = fused_ ? L.state_W[0] : dW_[j].data();
      dense_backward<T>(ConstWeightMap<T>(L.W, L.n_out, L.n_in), mat(u.y[j - 1]), mat(u.z[j]),
                        mat(u.dy[j]), L.activation, mat(u.dz[j]), WeightMap<T>(dW, L.n_out, L.n_in),
                        db, db_tmp_, mat(u.dy[j - 1]), true, beta);
      if (opt_.l2 != 0.0) {  // never fused (fuses_momentum): dW is the gradient
        // The penalty with the weights before this batch's update.
        job.penalty[2][static_cast<size_t>(e)] += 0.5 * opt_.l2 * sum_of_squares<T>(L.W, nW);
        add_l2<T>(opt_, bs, dW, L.W, 0, nW);
      }
      update_slice<T>(opt_, fused_, adam_t, L, 0, dW, 0, nW, false);
      update_slice<T>(opt_, fused_, adam_t, L, 1, db.data(), 0, L.n_out, false);
    }
    // dz2 = dy2 ⊙ f2'(z2); b2's step (the teams do W2's)
    const LayerSlot<T>& L2 = layers_[1];
    activation_backward<T>(L2.activation, mat(u.z[1]), mat(u.dy[1]), mat(u.dz[1]));
    db_tmp_.head(o2).noalias() = mat(u.dz[1]).rowwise().sum();  // aligned scratch (dense.hpp)
    db_.head(o2) = db_tmp_.head(o2);
    update_slice<T>(opt_, fused_, adam_t, L2, 1, db_.data(), 0, o2, false);
  }

  // Phase B; false when the batch's loss is not finite (nothing was updated).
  // reuse: take team 0's minibatch (one thread running both teams in turn).
  bool phase_b(Job& job, int t, Index e, Index bi, std::int64_t k, bool reuse) {
    Team& tm = teams_[t];
    const Upper& u = upper_[k & 1];
    if (!std::isfinite(static_cast<double>(u.loss))) {
      if (t == 0) {
        RunResult& res = job.out.epochs[static_cast<size_t>(e)];
        res.diverged = true;
        res.diverged_batch = bi;
      }
      return false;
    }
    const T* x = this->input(t, k, reuse);
    const Index bs = job.batch_len(bi), n = layers_[0].n_in, o2 = layers_[1].n_out, m = rows(t);
    const T beta = fused_ ? static_cast<T>(opt_.sgd.momentum) : T(0);
    const T* dz2 = u.dz[1].data();
    // dy1_t = W2[:, r:r+m]ᵀ dz2, with W2 as the batch saw it
    BatchRef<T> dy1 = tm.dy1.cols(bs), dz1 = tm.dz1.cols(bs);
    product(Op::N, Op::N, m, bs, o2, tm.out.W, m, dz2, o2, dy1.data(), m);
    // The team's columns of dW2 = dz2 y1_tᵀ (o2 x m row-major, i.e. m x o2 column-major),
    // or of the velocity under fused momentum (beta = μ in every batch: v, never μ v).
    T* dW2 = fused_ ? tm.out.state_W[0] : tm.dW2.data();
    product(Op::N, Op::T, m, o2, bs, tm.y1.data(), m, dz2, o2, dW2, m, beta);
    // dz1_t = dy1_t ⊙ f1'(z1_t);  db1_t = sum(dz1_t, axis=1)
    activation_backward<T>(layers_[0].activation, tm.z1.cols(bs), dy1, dz1);
    auto db = tm.db.vec();
    db.noalias() = dz1.rowwise().sum();
    // The team's rows of dW1 = dz1_t xᵀ (dW1ᵀ's columns), or of the velocity; on the
    // momentum kernel, with W1's update in the same pass.
    T* dW1 = fused_ ? tm.rows1.state_W[0] : tm.dW1.data();
    if (kernel_) {
      momentum_rows(t, bs, x, dz1.data());
    } else {
      product(Op::N, Op::T, n, m, bs, x, n, dz1.data(), m, dW1, n, beta);
    }
    const std::int64_t adam_t = step0_ + k + 1;  // every batch before k updated
    if (opt_.l2 != 0.0) {  // never fused (fuses_momentum): dW1 and dW2 are gradients
      // The penalty of the team's slices, with the weights before this batch's update.
      job.penalty[static_cast<size_t>(t)][static_cast<size_t>(e)] +=
          0.5 * opt_.l2 *
          (sum_of_squares<T>(tm.rows1.W, m * n) + sum_of_squares<T>(tm.out.W, o2 * m));
      add_l2<T>(opt_, bs, dW1, tm.rows1.W, 0, m * n);
      add_l2<T>(opt_, bs, dW2, tm.out.W, 0, o2 * m);
    }
    if (!kernel_) update_slice<T>(opt_, fused_, adam_t, tm.rows1, 0, dW1, 0, m * n, false);
    update_slice<T>(opt_, fused_, adam_t, tm.bias1, 1, db.data(), 0, m, false);
    update_slice<T>(opt_, fused_, adam_t, tm.out, 0, dW2, 0, o2 * m, false);
    if (t == 0) {
      RunResult& res = job.out.epochs[static_cast<size_t>(e)];
      res.loss_sum += static_cast<double>(u.loss) * static_cast<double>(bs);
      res.samples += bs;
      res.batches += 1;
    }
    return true;
  }

  // v = μ v + dz1_t xᵀ and W1 −= lr v over the team's rows, in one pass (kernel_ only).
  void momentum_rows(int t, Index bs, const T* x, const T* dz1) {
#if DENSA_HAVE_MOMENTUM_KERNEL
    if constexpr (std::is_same_v<T, float>) {
      Team& tm = teams_[t];
      const Index n = layers_[0].n_in, m = rows(t);
      MomentumScratch& s = tm.scratch;  // one slab: all of the team's rows
      detail::momentum_update_rows(n, 0, m, bs, x, n, dz1, m, tm.rows1.W, tm.rows1.state_W[0],
                                   static_cast<float>(opt_.sgd.lr),
                                   static_cast<float>(opt_.sgd.momentum), s.panels(0), s.sliver(0));
      return;
    }
#endif
    (void)t, (void)bs, (void)x, (void)dz1;
    densa::fail("trainer: the momentum kernel is not in this build");  // kernel_ is false
  }

  std::vector<LayerSlot<T>> layers_;  // the caller's arrays
  Loss loss_;
  OptimizerConfig opt_;
  bool fused_;           // plain momentum SGD: dW formed in the velocity (fuses_momentum)
  bool kernel_ = false;  // W1's rows on the momentum kernel
  std::array<Index, 3> bounds_{};
  std::array<Team, 2> teams_;
  std::array<std::array<LineBuffer<T>, 2>, 2> partial_;  // [team][batch parity]: P_t
  std::array<Upper, 2> upper_;                           // [batch parity]
  std::vector<RowMatrix<T>> dW_;                         // U's weight gradients (unfused)
  Vector<T> db_, db_tmp_;                                // U's bias gradients
  std::int64_t step0_ = 0;                               // Adam's t before the run
};

}  // namespace densa
