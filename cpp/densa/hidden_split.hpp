// Training a network of two dense layers (one hidden layer) on two threads at once, by
// splitting the hidden layer's units between them. Pure C++: nothing here knows Python.
//
// Why: a small network's products are too small to cut into slabs (gemm.hpp) and each
// batch depends on the previous update, so the general loop (trainer.hpp) runs such a
// network on one core. scikit-learn's digits network (64-64-10, batch 32) spends 7 of
// its 9.5 us per batch in five products that are already near one core's peak.
//
// How: team t (t = 0, 1) owns hidden units [r_t, r_{t+1}): their rows of W1, b1, z1, y1,
// dy1, dz1 and their columns of W2, and the same slices of every optimizer state. Per
// batch, each team
//   A  gathers the whole minibatch x (a private copy; unless already gathered, below)
//      and computes its units,
//        z1_t = W1[r_t:r_{t+1}, :] x + b1_t,  y1_t = f1(z1_t),
//      and its share of the output's product, P_t = W2[:, r_t:r_{t+1}] y1_t, held
//      transposed (batch x outputs): in that shape it is the forward kernel's
//      (gemm_tn.hpp), 0.3 us against OpenBLAS's 0.5 us for its 10 rows; then publishes
//      P_t. The first team to get there
//   O  waits for the other's P_t and computes the output layer for both: z2 = (P_0 +
//      P_1) + b2, the loss and dz2 (shared_phase), and publishes them; the other team
//      gathers its next minibatch meanwhile and waits for them;
//   B  from its own slices only: its columns of dW2, dy1_t = W2[:, r_t:r_{t+1}]ᵀ dz2,
//      dz1_t = dy1_t ⊙ f1'(z1_t), its rows of dW1, db1_t, and the updates of its slices.
//      Team 0 also updates b2.
// Nothing else is shared, so nothing else needs waiting for: a team's next batch reads
// only its own rows of W1 and columns of W2. P, b2's snapshot and the output layer
// alternate between two buffers by batch parity: a team cannot write batch k+2's before
// the other has published its P for batch k+2, i.e. finished with batch k's.
//
// The schedule (who waits for whom, one thread or two) is two_teams.hpp's, shared with
// first_layer_split.hpp.
//
// Each team trains on private copies of its slices, on cache lines of their own, copied
// in when a run call starts and back however it ends (LineBuffer, teamwork.hpp, says
// why). The team on the pool's worker leaves the caller's CPU if it finds itself on it
// (cpu_placement.hpp).
//
// Results: every element is computed by the same code on the same operands whoever
// runs it, and the split depends on the shape only. With one thread, when the pool is
// busy, or where the process may use one CPU only, one thread runs both teams' phases
// in turn, team 1 reusing team 0's minibatch: the same bits as two threads, without the
// duplicated work. Which team computes a batch's output layer changes no bits either.
// Only z2's sum over hidden units is formed as two partial products plus their sum, so
// these networks round a little differently from the general loop (within the
// reference tests' tolerances, like any change of summation order).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "dense.hpp"
#include "gemm.hpp"
#include "loss.hpp"
#include "parallel.hpp"
#include "parameters.hpp"
#include "relu_backward.hpp"
#include "teamwork.hpp"
#include "two_teams.hpp"
#include "types.hpp"

namespace densa {

// Below this many flops per batch (all five products), the exchange (~0.3 us here) and
// the output layer (one team computes it while the other waits) outweigh the halved
// products.
inline constexpr double kSplitMinFlops = 2.0e5;

// Off only to compare with the general loop (tests, benchmarks); on by default. Read
// when a Trainer is built. Atomic: Python may flip it while another thread trains.
inline std::atomic<bool>& hidden_split_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// Whether a network of these layers trains through HiddenSplit: two layers, a hidden
// layer wide enough to halve (16 units a team at least), products too small to be cut
// into slabs (larger ones already use every thread), and enough work per batch. A rule
// of the shapes only, never of the thread count.
template <class T>
bool hidden_split_applies(const std::vector<LayerSlot<T>>& layers, Index max_batch) {
  if (!hidden_split_enabled().load(std::memory_order_relaxed) || layers.size() != 2) return false;
  const Index n = layers[0].n_in, h = layers[0].n_out, o = layers[1].n_out;
  if (h < 32) return false;
  const double flops = 2.0 * static_cast<double>(max_batch) * static_cast<double>(h) *
                       (2.0 * static_cast<double>(n) + 3.0 * static_cast<double>(o));
  if (flops < kSplitMinFlops) return false;
  const bool one_slab =
      plan_slabs(h, max_batch, n).count == 1 && plan_slabs(n, h, max_batch).count == 1 &&
      plan_slabs(o, max_batch, h).count == 1 && plan_slabs(h, max_batch, o).count == 1;
  return one_slab && elementwise_blocks(h * max_batch) == 1;
}

template <class T>
class HiddenSplit : public TwoTeams<HiddenSplit<T>, T> {
 public:
  using Job = TeamJob<T>;

  HiddenSplit(const std::vector<LayerSlot<T>>& layers, Loss loss, const OptimizerConfig& opt,
              Index max_batch)
      : L1_(layers[0]), L2_(layers[1]), loss_(loss), opt_(opt), fused_(fuses_momentum(opt)) {
    const Index n = L1_.n_in, h = L1_.n_out, o = L2_.n_out;
    // The split point: half the units, on a multiple of 8 (whole SIMD vectors of rows).
    bounds_ = {0, std::min(h, (h / 2 + 4) / 8 * 8), h};
    this->size_inputs(n, max_batch);
    for (int t = 0; t < 2; ++t) {
      Team& tm = teams_[t];
      const Index m = rows(t);
      for (auto* a : {&tm.z1, &tm.y1, &tm.dy1, &tm.dz1}) a->resize(m, max_batch);
      tm.db_tmp.resize(std::max(m, o), 1);
      tm.db1.resize(m, 1);
      tm.db2.resize(o, 1);
      tm.dW1.resize(fused_ ? 0 : m * n, 1);  // fused momentum keeps dW in the velocity
      tm.dW2.resize(fused_ ? 0 : m * o, 1);
      // The team's slices, as private copies during a run (LineBuffer says why).
      tm.hidden = private_slot(L1_, m, n, tm.hidden_mem);
      tm.out = private_slot(L2_, o, m, tm.out_mem);  // W2ᵀ's rows: m x o column-major
      if (t == 0) tm.bias2 = private_slot(L2_, o, 0, tm.bias2_mem);
      for (auto& p : partial_[t]) p.resize(o, max_batch);
      b2_copy_[t].resize(o, 1);
    }
    for (OutputLayer& ol : output_) {
      for (auto* a : {&ol.target, &ol.z2, &ol.y2, &ol.dy2, &ol.dz2}) a->resize(o, max_batch);
      ol.loss.resize(1, 1);
    }
  }

  // Wakes the pool's worker now (without waiting for it; the pool keeps it off the
  // caller's CPU, parallel.hpp), so that the first run, which fit starts a fraction of a
  // millisecond later, finds it awake on the other CPU. Otherwise that run waits for
  // both: ~0.1-0.2 ms on the development machine after an idle pause (a digits fit's
  // first batch took 0.27 ms against 5 us), 1.4% of the benchmark's digits fit
  // (docs/performance.md). The worker then polls for the run for up to
  // kSpinMicroseconds (parallel.hpp).
  static void wake_partner() {
    if (allowed_cpus() < 2) return;  // run() then takes turns on one thread, without the pool
    thread_pool().post([](std::int64_t) {});  // the wake-up is the point
  }

  // Epochs e = 0 .. n_epochs-1, each visiting batches [first_batch, end_batch) of the
  // order at orders + e·n_order, as Trainer::run would, batch for batch. Stops before
  // the update of the first batch whose loss is not finite. W's velocities hold v on
  // entry and on return (phase_b says why never μ v, unlike trainer.hpp's loop).
  SplitRun run(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
               const std::int64_t* orders, Index n_epochs, Index n_order, Index batch_size,
               Index first_batch, Index end_batch) {
    Job job{X, targets, orders, n_epochs, n_order, batch_size, first_batch, end_batch};
    step0_ = opt_.kind == OptimizerKind::adam ? *opt_.step : 0;
    this->run_teams(job);
    if (opt_.kind == OptimizerKind::adam) *opt_.step = step0_ + job.updates;
    return std::move(job.out);
  }

 private:
  friend class TwoTeams<HiddenSplit<T>, T>;  // calls the phases below

  struct Team {
    LineBuffer<T> z1, y1, dy1, dz1;  // the team's hidden units only
    LineBuffer<T> db_tmp;            // aligned scratch for the bias gradients
    LineBuffer<T> db1, db2, dW1, dW2;
    // Private copies of the team's slices: its rows of W1 and b1 (`hidden`, m x n), its
    // columns of W2 (`out`, stored as W2ᵀ's rows, m x o column-major), and for team 0
    // b2 (`bias2`). Each with its optimizer state.
    LayerSlot<T> hidden, out, bias2;
    SliceMem<T> hidden_mem[2], out_mem[2], bias2_mem[2];  // [0]: W (or b), [1]: the bias
  };

  // The output layer of one batch, a row per sample (bs x o), computed by one team for
  // both (shared_phase).
  struct OutputLayer {
    LineBuffer<T> target, z2, y2, dy2, dz2;
    LineBuffer<T> loss;  // J, one value
  };

  Index rows(int t) const { return bounds_[t + 1] - bounds_[t]; }

  // Team t's slices of the parameters and of their optimizer state: into its private
  // copies (in), or back to the caller's arrays (out), which happens however a run ends.
  void copy_slices(int t, bool in) noexcept {
    Team& tm = teams_[t];
    const Index n = L1_.n_in, h = L1_.n_out, o = L2_.n_out, r = bounds_[t], m = rows(t);
    // W1's rows r..r+m and b1's entries (contiguous).
    copy_slice_runs(in, L1_.W ? L1_.W + r * n : nullptr, tm.hidden.W, 1, m * n, 0);
    copy_slice_runs(in, L1_.b + r, tm.hidden.b, 1, m, 0);
    for (int k = 0; k < 2; ++k) {
      copy_slice_runs(in, L1_.state_W[k] ? L1_.state_W[k] + r * n : nullptr, tm.hidden.state_W[k],
                      1, m * n, 0);
      copy_slice_runs(in, L1_.state_b[k] ? L1_.state_b[k] + r : nullptr, tm.hidden.state_b[k], 1, m,
                      0);
    }
    // W2[i, r:r+m] for every output i (strided).
    copy_slice_runs(in, L2_.W + r, tm.out.W, o, m, h);
    for (int k = 0; k < 2; ++k) {
      copy_slice_runs(in, L2_.state_W[k] ? L2_.state_W[k] + r : nullptr, tm.out.state_W[k], o, m,
                      h);
    }
    if (t == 0) {  // b2
      copy_slice_runs(in, L2_.b, tm.bias2.b, 1, o, 0);
      for (int k = 0; k < 2; ++k) copy_slice_runs(in, L2_.state_b[k], tm.bias2.state_b[k], 1, o, 0);
    }
  }

  // Phase A of batch bi of epoch e (the k-th of the run) for team t; see the header.
  // reuse: take team 0's gathered minibatch (one thread running both teams in turn).
  void phase_a(Job& job, int t, Index e, Index bi, std::int64_t k, bool reuse) {
    Team& tm = teams_[t];
    const Index bs = job.batch_len(bi), n = L1_.n_in, o = L2_.n_out, m = rows(t);
    // P_t's buffer (and b2's) for this parity was last read by the other team two
    // batches ago: take its lines back now, while z1 is computed (teamwork.hpp).
    LineBuffer<T>& P = partial_[t][k & 1];
    prefetch_for_write(P.data(), static_cast<std::size_t>(o * bs) * sizeof(T));
    if (t == 0) prefetch_for_write(b2_copy_[k & 1].data(), static_cast<std::size_t>(o) * sizeof(T));
    const T* x = this->minibatch(job, t, e, bi, k, reuse);
    // z1_t = W1[r:r+m, :] x + b1_t;  y1_t = f1(z1_t)
    BatchRef<T> z1 = tm.z1.cols(bs), y1 = tm.y1.cols(bs);
    gemm<T>(Op::T, Op::N, m, bs, n, tm.hidden.W, n, x, n, z1.data(), m);
    bias_activation<T>(L1_.activation, ConstVectorMap<T>(tm.hidden.b, m), z1, y1);
    // P_tᵀ = y1_tᵀ W2[:, r:r+m]ᵀ  (bs x o; the private copy is W2ᵀ's rows r.., m x o)
    gemm<T>(Op::T, Op::N, bs, o, m, y1.data(), m, tm.out.W, m, P.data(), bs);
    if (t == 0) {  // b2 as of this batch, for both teams' z2
      std::copy(tm.bias2.b, tm.bias2.b + o, b2_copy_[k & 1].data());
    }
  }

  // z2 = (P_0 + P_1) + b2 for the first bs samples of the batch of parity `parity`, in
  // one pass, a row per sample like the partials (bs x o).
  void sum_partials(std::int64_t parity, Index bs, T* z2) const {
    const Index o = L2_.n_out;
    const T* p0 = partial_[0][parity].data();
    const T* p1 = partial_[1][parity].data();
    const T* b = b2_copy_[parity].data();
    // All of the other team's lines at once (teamwork.hpp, prefetch_for_read).
    const std::size_t bytes = static_cast<std::size_t>(o * bs) * sizeof(T);
    prefetch_for_read(p0, bytes);
    prefetch_for_read(p1, bytes);
    prefetch_for_read(b, static_cast<std::size_t>(o) * sizeof(T));
    for (Index i = 0; i < o; ++i) {
      for (Index c = 0; c < bs; ++c) z2[i * bs + c] = (p0[i * bs + c] + p1[i * bs + c]) + b[i];
    }
  }

  // The same columns as the rows of `to` (bs x from.rows(), column-major).
  static void gather_rows(const ConstBatchRef<T>& from, const std::int64_t* idx, Index bs, T* to) {
    const Index rows = from.rows(), ld = from.outerStride();
    for (Index c = 0; c < bs; ++c) {
      const T* col = from.data() + sample_index(idx[c], from.cols()) * ld;
      for (Index i = 0; i < rows; ++i) to[i * bs + c] = col[i];
    }
  }

  // The first bs rows of a buffer holding a row per sample (bs x cols, column-major).
  static BatchRef<T> sample_rows(const LineBuffer<T>& buf, Index bs, Index cols) {
    return Eigen::Map<Matrix<T>>(buf.data(), bs, cols);
  }

  // The output layer of batch bi of epoch e (the k-th of the run), for both teams, from
  // both partials: z2 = (P_0 + P_1) + b2;  y2 = f2(z2);  dy2 = dJ/dy2 and the loss J;
  // dz2 = dy2 ⊙ f2'(z2). All with a row per sample (bs x o), the partials' shape: the
  // softmax then reads its blocks of samples as they lie (loss.hpp), and phase B's
  // products take dz2 transposed. An identity output (the usual one under softmax
  // cross-entropy) has y2 = z2 and dz2 = dy2 · 1 = dy2 exactly: neither is copied.
  //
  // Why one team: both teams need all of it, and computing it twice made each team pay
  // for it (the loss ~1.8k ticks, z2's sum and the targets' gather ~1.3k more, per batch).
  // Now the team that finishes phase A first computes it (it would otherwise wait), and
  // the other gathers its next minibatch in that time (gather_ahead), so that neither
  // team's batch holds a gather or a loss the other one is waiting on. Which team does
  // it changes no bits: the same code on the same values.
  void shared_phase(Job& job, Index /*e*/, Index bi, std::int64_t k) {
    OutputLayer& ol = output_[k & 1];
    const Index bs = job.batch_len(bi), o = L2_.n_out;
    const bool identity_out = L2_.activation == Activation::identity;
    BatchRef<T> z2 = sample_rows(ol.z2, bs, o);
    BatchRef<T> y2 = identity_out ? z2 : sample_rows(ol.y2, bs, o);
    BatchRef<T> dy2 = sample_rows(ol.dy2, bs, o);
    BatchRef<T> dz2 = identity_out ? dy2 : sample_rows(ol.dz2, bs, o);
    sum_partials(k & 1, bs, z2.data());
    if (!identity_out) activation_f<T>(L2_.activation, z2, y2);
    const T loss = loss_forward_backward<T, true>(loss_, y2, sample_rows(ol.target, bs, o), &dy2);
    if (!identity_out) activation_backward<T>(L2_.activation, z2, dy2, dz2);
    ol.loss.data()[0] = loss;
  }

  // The part of shared_phase that needs neither partial, done while the team that
  // computes it waits for the other's: the batch's targets, and the lines of this
  // parity's buffers, which the other team may have read last (teamwork.hpp).
  void prepare_shared(Job& job, Index e, Index bi, std::int64_t k) {
    OutputLayer& ol = output_[k & 1];
    const Index bs = job.batch_len(bi), o = L2_.n_out;
    gather_rows(job.targets, job.orders + job.batch_start(e, bi), bs, ol.target.data());
    const std::size_t bytes = static_cast<std::size_t>(o * bs) * sizeof(T);
    prefetch_for_write(ol.z2.data(), bytes);
    prefetch_for_write(ol.dy2.data(), bytes);
    if (L2_.activation != Activation::identity) {  // y2 and dz2 are z2 and dy2 otherwise
      prefetch_for_write(ol.y2.data(), bytes);
      prefetch_for_write(ol.dz2.data(), bytes);
    }
    prefetch_for_write(ol.loss.data(), sizeof(T));
  }

  // Phase B; false when the batch's loss is not finite (nothing was updated).
  // reuse: take team 0's minibatch (one thread running both teams in turn; team 0 found
  // the loss finite).
  bool phase_b(Job& job, int t, Index e, Index bi, std::int64_t k, bool reuse) {
    Team& tm = teams_[t];
    const OutputLayer& ol = output_[k & 1];
    const T* x = this->input(t, k, reuse);
    const Index bs = job.batch_len(bi), n = L1_.n_in, o = L2_.n_out, m = rows(t);
    const bool identity_out = L2_.activation == Activation::identity;
    BatchRef<T> dz2 = sample_rows(identity_out ? ol.dy2 : ol.dz2, bs, o);
    const T loss = ol.loss.data()[0];
    if (!std::isfinite(static_cast<double>(loss))) {
      if (t == 0) {
        RunResult& res = job.out.epochs[static_cast<size_t>(e)];
        res.diverged = true;
        res.diverged_batch = bi;
      }
      return false;
    }
    // Fused momentum: v = μ v + dz yᵀ formed by the dW products themselves (beta = μ),
    // then θ -= lr v. trainer.hpp's loop instead keeps μ v between batches and adds with
    // beta = 1, because for its larger products OpenBLAS scales C by beta in a pass of
    // its own; for the split's small ones it folds beta into its multiply-adds at no cost
    // (3198 against 3224 ticks for dW1's product), and the update then writes θ only
    // (234 against 416 ticks for W1's slice). Every batch forms v the same way, so a run
    // cut in parts still equals the whole.
    const T beta = fused_ ? static_cast<T>(opt_.sgd.momentum) : T(0);
    // The team's columns of dW2 = dz2 · y1ᵀ (as W2ᵀ's rows, column-major), or of the
    // velocity under fused momentum.
    T* dW2 = fused_ ? tm.out.state_W[0] : tm.dW2.data();
    const T* y1 = tm.y1.data();
    gemm<T>(Op::N, Op::N, m, o, bs, y1, m, dz2.data(), bs, dW2, m, beta);
    // dy1_t = W2[:, r:r+m]ᵀ dz2;  dz1_t = dy1_t ⊙ f1'(z1_t);  db1_t = sum(dz1_t, axis=1):
    // in one pass for a relu layer (relu_backward.hpp says why), else in three.
    BatchRef<T> dy1 = tm.dy1.cols(bs), dz1 = tm.dz1.cols(bs);
    auto db_tmp = tm.db_tmp.vec();
    if (!relu_backward_fused<T>(L1_.activation, m, bs, o, tm.out.W, dz2.data(), tm.z1.data(),
                                dz1.data(), m, tm.db1.data())) {
      gemm<T>(Op::N, Op::T, m, bs, o, tm.out.W, m, dz2.data(), bs, dy1.data(), m);
      activation_backward<T>(L1_.activation, tm.z1.cols(bs), dy1, dz1);
      // db through the aligned scratch (dense.hpp says why)
      db_tmp.head(m).noalias() = dz1.rowwise().sum();
      tm.db1.vec() = db_tmp.head(m);
    }
    // The team's rows of dW1 = dz1 · xᵀ (dW1ᵀ's columns), or of the velocity.
    T* dW1 = fused_ ? tm.hidden.state_W[0] : tm.dW1.data();
    gemm<T>(Op::N, Op::T, n, m, bs, x, n, dz1.data(), m, dW1, n, beta);
    if (t == 0) {
      db_tmp.head(o).noalias() = dz2.colwise().sum().transpose();
      tm.db2.vec() = db_tmp.head(o);
    }
    // The updates of the team's slices; Adam's t counts the run's updates so far.
    const std::int64_t adam_t = step0_ + k + 1;  // every batch before k updated
    if (opt_.l2 != 0.0) {  // never fused (fuses_momentum): dW1 and dW2 are gradients
      // The penalty of the team's slices, with the weights before this batch's update.
      job.penalty[static_cast<size_t>(t)][static_cast<size_t>(e)] +=
          0.5 * opt_.l2 *
          (sum_of_squares<T>(tm.hidden.W, m * n) + sum_of_squares<T>(tm.out.W, m * o));
      // The team's W slices share dW1's and dW2's layouts (row-major W1 rows; W2ᵀ rows).
      add_l2<T>(opt_, bs, tm.dW1.data(), tm.hidden.W, 0, m * n);
      add_l2<T>(opt_, bs, tm.dW2.data(), tm.out.W, 0, m * o);
    }
    update_slice<T>(opt_, fused_, adam_t, tm.hidden, 0, tm.dW1.data(), 0, m * n, false);
    update_slice<T>(opt_, fused_, adam_t, tm.hidden, 1, tm.db1.data(), 0, m, false);
    update_slice<T>(opt_, fused_, adam_t, tm.out, 0, tm.dW2.data(), 0, m * o, false);
    if (t == 0) {
      update_slice<T>(opt_, fused_, adam_t, tm.bias2, 1, tm.db2.data(), 0, o, false);
      RunResult& res = job.out.epochs[static_cast<size_t>(e)];
      res.loss_sum += static_cast<double>(loss) * static_cast<double>(bs);
      res.samples += bs;
      res.batches += 1;
    }
    return true;
  }

  LayerSlot<T> L1_, L2_;  // the caller's arrays
  Loss loss_;
  OptimizerConfig opt_;
  bool fused_;
  std::array<Index, 3> bounds_{};
  std::array<Team, 2> teams_;
  std::array<std::array<LineBuffer<T>, 2>, 2> partial_;  // [team][batch parity]: P_tᵀ
  std::array<LineBuffer<T>, 2> b2_copy_;                 // [batch parity]: b2 for z2
  std::array<OutputLayer, 2> output_;                    // [batch parity]
  std::int64_t step0_ = 0;                               // Adam's t before the run
};

}  // namespace densa
