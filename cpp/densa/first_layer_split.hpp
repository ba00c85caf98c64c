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
//   B  from its own slices only: dy1_t = W2[:, r_t:r_{t+1}]ᵀ dz2, its columns of W2's
//      velocity v = μ v + dz2 y1_tᵀ and of W2, dz1_t = dy1_t ⊙ f1'(z1_t), b1_t's update,
//      and its rows of W1's velocity and of W1 in one pass (momentum_update.hpp).
// The parameters of the upper network (b2, layers 3..K) are read and written in U only,
// which runs for one batch after the other (each U waits for both teams' P_t of its batch,
// published after their B of the batch before). U's buffers, P_t and x alternate between
// two by batch parity, as hidden_split.hpp's do.
//
// Where (first_layer_split_applies): SGD with momentum in float32 (the momentum kernel
// does W1's step), a first layer large enough that the general loop would cut its products
// into slabs, and an upper network small beside it (it runs on one thread).
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
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "dense.hpp"
#include "gemm.hpp"
#include "hidden_split.hpp"
#include "loss.hpp"
#include "momentum_update.hpp"
#include "parallel.hpp"
#include "parameters.hpp"
#include "teamwork.hpp"
#include "types.hpp"

namespace densa {

// Off only to compare with the general loop (tests, benchmarks); on by default. Read
// when a Trainer is built. Atomic: Python may flip it while another thread trains.
inline std::atomic<bool>& first_layer_split_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

// Whether a network of these layers trains through FirstLayerSplit. A rule of the shapes
// and the optimizer only, never of the thread count.
template <class T>
bool first_layer_split_applies(const std::vector<LayerSlot<T>>& layers, const OptimizerConfig& opt,
                               Index max_batch) {
  if (!std::is_same_v<T, float> || !first_layer_split_enabled().load(std::memory_order_relaxed) ||
      layers.size() < 3 || !fuses_momentum(opt)) {
    return false;
  }
  const Index n = layers[0].n_in, h = layers[0].n_out;
  if (h < 32) return false;
  const Index half = std::min(h, (h / 2 + 4) / 8 * 8);
  // W1's step on the momentum kernel for both teams' rows.
  if (!use_momentum_kernel(half, n, max_batch) || !use_momentum_kernel(h - half, n, max_batch))
    return false;
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
class FirstLayerSplit {
 public:
  FirstLayerSplit(const std::vector<LayerSlot<T>>& layers, Loss loss, const OptimizerConfig& opt,
                  Index max_batch)
      : layers_(layers), loss_(loss), opt_(opt), max_batch_(max_batch) {
    const Index n = layers_[0].n_in, h = layers_[0].n_out, o2 = layers_[1].n_out;
#if DENSA_USE_BLAS
    // The teams call the BLAS directly (product), not through gemm(), which checks these.
    for (Index size : {n, h, o2, max_batch}) detail::blas_int(size, "a layer size");
    init_gemm_backend();
#endif
    bounds_ = {0, std::min(h, (h / 2 + 4) / 8 * 8), h};
    for (int t = 0; t < 2; ++t) {
      Team& tm = teams_[t];
      const Index m = rows(t);
      for (auto& x : tm.x) x.resize(n, max_batch);
      for (auto* a : {&tm.z1, &tm.y1, &tm.dy1, &tm.dz1}) a->resize(m, max_batch);
      tm.db.resize(m, 1);
      for (auto* a : {&tm.b1, &tm.vb1}) a->resize(m, 1);
      for (auto* a : {&tm.W2, &tm.V2}) a->resize(o2 * m, 1);  // o2 x m, row-major
#if DENSA_HAVE_MOMENTUM_KERNEL
      tm.scratch = MomentumScratch(max_batch);
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
    Index widest = 0;
    for (size_t j = 1; j < K; ++j) widest = std::max(widest, layers_[j].n_out);
    db_.resize(widest);
    db_tmp_.resize(widest);
  }

  // Epochs e = 0 .. n_epochs-1, each visiting batches [first_batch, end_batch) of the
  // order at orders + e·n_order, as Trainer::run would, batch for batch. Stops before
  // the update of the first batch whose loss is not finite. Velocities hold v on entry
  // and on return.
  SplitRun run(const ConstBatchRef<T>& X, const ConstBatchRef<T>& targets,
               const std::int64_t* orders, Index n_epochs, Index n_order, Index batch_size,
               Index first_batch, Index end_batch) {
    Job job{X, targets, orders, n_epochs, n_order, batch_size, first_batch, end_batch};
    job.out.epochs.resize(static_cast<size_t>(n_epochs));
    for (auto& s : signals_) s.reset();
    upper_ready_.reset();
    claim_.last.store(-1, std::memory_order_relaxed);
    for (Team& tm : teams_) tm.gathered = -1;
    const auto team_task = [&](std::int64_t t) { run_team(job, static_cast<int>(t)); };
    if (allowed_cpus() < 2 || !thread_pool().run_pair(team_task)) run_interleaved(job);
    if (job.error) std::rethrow_exception(job.error);
    return std::move(job.out);
  }

 private:
  struct Team {
    LineBuffer<T> x[2];          // [batch parity]: the gathered minibatch
    std::int64_t gathered = -1;  // the batch (its place k in the run) in x[k & 1]
    LineBuffer<T> z1, y1, dy1, dz1, db;
    // Private copies of the team's b1 entries and W2 columns (o2 x m, row-major), with
    // their velocities, on cache lines of their own (teamwork.hpp, LineBuffer): copied in
    // when a run starts, back however it ends. W1's rows and their velocity are used in
    // place: whole rows, which the other team never touches.
    LineBuffer<T> b1, vb1, W2, V2;
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

  struct alignas(64) Claim {             // a cache line of its own: both teams write it
    std::atomic<std::int64_t> last{-1};  // the last batch whose upper network is taken
  };

  struct Job {
    const ConstBatchRef<T>& X;
    const ConstBatchRef<T>& targets;
    const std::int64_t* orders;
    Index n_epochs, n_order, batch_size, first_batch, end_batch;
    SplitRun out{};
    std::exception_ptr error{};  // the first failure of either team
    std::atomic<bool> failed{false};
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<int> cpu[2] = {-1, -1};   // [team]: the CPU it ran its last batch on
    std::atomic<int> team_on_caller{-1};  // set before the first exchange, read after
  };

  static Index batch_start(const Job& job, Index e, Index bi) {
    return e * job.n_order + bi * job.batch_size;
  }
  static Index batch_len(const Job& job, Index bi) {
    return std::min(job.batch_size, job.n_order - bi * job.batch_size);
  }
  Index rows(int t) const { return bounds_[t + 1] - bounds_[t]; }

  // One product on the calling thread (gemm.hpp's slab): a team's products are never cut
  // into slabs, whose bounds (and so whose rounding) depend on the machine's CPU count.
  static void product(Op ta, Op tb, Index M, Index N, Index K, const T* A, Index lda, const T* B,
                      Index ldb, T* C, Index ldc, T beta = T(0)) {
    detail::gemm_slab<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta,
                         detail::gemm_tn_computes(ta, tb, M, N, K, beta));
  }

  // One team's whole run, concurrently with the other's (hidden_split.hpp's run_team,
  // whose placement rules this follows).
  void run_team(Job& job, int t) {
    copy_slices(t, true);
    const bool on_caller = std::this_thread::get_id() == job.caller;
    if (on_caller) job.team_on_caller.store(t, std::memory_order_relaxed);
    std::optional<AvoidCpu> apart;
    try {
      std::int64_t k = 0;
      bool go = true;
      for (Index e = 0; go && e < job.n_epochs; ++e) {
        const auto t0 = std::chrono::steady_clock::now();
        for (Index bi = job.first_batch; go && bi < job.end_batch; ++bi) {
          phase_a(job, t, e, bi, k, false);
          const int cpu = current_cpu();
          job.cpu[t].store(cpu, std::memory_order_relaxed);
          std::int64_t before = k - 1;
          const bool computes_upper =
              claim_.last.compare_exchange_strong(before, k, std::memory_order_acq_rel);
          signals_[t].publish(k + 1);
          if (computes_upper) {
            gather_targets(job, e, bi, k);
            go = signals_[1 - t].wait_for(k + 1);  // false: the other team failed
            if (go) upper_network(job, bi, k);
            upper_ready_.publish(k + 1);
          } else {
            gather_ahead(job, t, e, bi, k);
            go = upper_ready_.wait_for(k + 1);
          }
          const int caller_team = job.team_on_caller.load(std::memory_order_relaxed);
          const bool mover = !on_caller && (caller_team == 1 - t || (caller_team < 0 && t == 1));
          if (mover && !apart && cpu >= 0 &&
              job.cpu[1 - t].load(std::memory_order_relaxed) == cpu) {
            apart.emplace(cpu);
          }
          go = go && phase_b(job, t, e, bi, k, false);
          k += go;
        }
        if (go && t == 0) record_epoch_time(job, t0);
      }
    } catch (...) {
      fail(job);
    }
    copy_slices(t, false);
  }

  // Both teams' phases in turn on the calling thread: the same work, the same bits.
  void run_interleaved(Job& job) {
    copy_slices(0, true);
    copy_slices(1, true);
    try {
      std::int64_t k = 0;
      bool go = true;
      for (Index e = 0; go && e < job.n_epochs; ++e) {
        const auto t0 = std::chrono::steady_clock::now();
        for (Index bi = job.first_batch; go && bi < job.end_batch; ++bi) {
          phase_a(job, 0, e, bi, k, false);
          phase_a(job, 1, e, bi, k, true);
          gather_targets(job, e, bi, k);
          upper_network(job, bi, k);
          go = phase_b(job, 0, e, bi, k, false);
          if (go) phase_b(job, 1, e, bi, k, true);
          k += go;
        }
        if (go) record_epoch_time(job, t0);
      }
    } catch (...) {
      fail(job);
    }
    copy_slices(0, false);
    copy_slices(1, false);
  }

  void fail(Job& job) {
    if (!job.failed.exchange(true)) job.error = std::current_exception();
    for (auto& s : signals_) s.abort();
    upper_ready_.abort();
  }

  static void record_epoch_time(Job& job, std::chrono::steady_clock::time_point t0) {
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    job.out.seconds.push_back(dt.count());
  }

  // Team t's b1 entries and W2 columns, with their velocities: into its private copies
  // (in), or back to the caller's arrays (out).
  void copy_slices(int t, bool in) noexcept {
    Team& tm = teams_[t];
    const LayerSlot<T>&L1 = layers_[0], &L2 = layers_[1];
    const Index h = L1.n_out, o2 = L2.n_out, r = bounds_[t], m = rows(t);
    auto copy = [in](T* caller, T* mine, Index count, Index len, Index stride) {
      for (Index i = 0; i < count; ++i) {
        if (in) {
          std::copy(caller + i * stride, caller + i * stride + len, mine + i * len);
        } else {
          std::copy(mine + i * len, mine + (i + 1) * len, caller + i * stride);
        }
      }
    };
    copy(L1.b + r, tm.b1.data(), 1, m, 0);
    copy(L1.state_b[0] + r, tm.vb1.data(), 1, m, 0);
    copy(L2.W + r, tm.W2.data(), o2, m, h);
    copy(L2.state_W[0] + r, tm.V2.data(), o2, m, h);
  }

  // Columns idx[0..bs) of the column-major `from` into the contiguous `to`.
  static void gather(const ConstBatchRef<T>& from, const std::int64_t* idx, Index bs, T* to) {
    const Index rows = from.rows(), ld = from.outerStride();
    for (Index c = 0; c < bs; ++c) {
      const T* col = from.data() + sample_index(idx[c], from.cols()) * ld;
      std::copy(col, col + rows, to + c * rows);
    }
  }

  // Phase A of batch bi of epoch e (the k-th of the run) for team t.
  // reuse: take team 0's gathered minibatch (one thread running both teams in turn).
  void phase_a(Job& job, int t, Index e, Index bi, std::int64_t k, bool reuse) {
    Team& tm = teams_[t];
    const LayerSlot<T>& L1 = layers_[0];
    const Index bs = batch_len(job, bi), n = L1.n_in, o2 = layers_[1].n_out, m = rows(t);
    LineBuffer<T>& P = partial_[t][k & 1];
    prefetch_for_write(P.data(), static_cast<std::size_t>(o2 * bs) * sizeof(T));
    if (!reuse && tm.gathered != k) {  // unless gather_ahead did it
      gather(job.X, job.orders + batch_start(job, e, bi), bs, tm.x[k & 1].data());
      tm.gathered = k;
    }
    const T* x = teams_[reuse ? 0 : t].x[k & 1].data();
    // z1_t = W1[r:r+m, :] x + b1_t;  y1_t = f1(z1_t)
    BatchRef<T> z1 = tm.z1.cols(bs), y1 = tm.y1.cols(bs);
    product(Op::T, Op::N, m, bs, n, L1.W + bounds_[t] * n, n, x, n, z1.data(), m);
    bias_activation<T>(L1.activation, ConstVectorMap<T>(tm.b1.data(), m), z1, y1);
    // P_t = W2[:, r:r+m] y1_t  (o2 x bs; the private copy is o2 x m row-major)
    product(Op::T, Op::N, o2, bs, m, tm.W2.data(), m, y1.data(), m, P.data(), o2);
  }

  // The batch's targets, before the team computing U waits for the other's P_t.
  void gather_targets(Job& job, Index e, Index bi, std::int64_t k) {
    gather(job.targets, job.orders + batch_start(job, e, bi), batch_len(job, bi),
           upper_[k & 1].target.data());
  }

  // The next batch's minibatch into team t's other x buffer, while the other team runs
  // the upper network of batch k (bi of epoch e).
  void gather_ahead(Job& job, int t, Index e, Index bi, std::int64_t k) {
    Index e_next = e, bi_next = bi + 1;
    if (bi_next >= job.end_batch) {
      if (e + 1 >= job.n_epochs) return;  // the run's last batch
      e_next = e + 1;
      bi_next = job.first_batch;
    }
    Team& tm = teams_[t];
    // An index out of range (an order changed during the run, sample_index) is left for
    // phase A of the next batch to find again and throw: thrown here, it would stop this
    // team before its phase B of batch k, after the other team's, and leave batch k half
    // applied. From phase A, no part of batch k + 1 is applied.
    try {
      gather(job.X, job.orders + batch_start(job, e_next, bi_next), batch_len(job, bi_next),
             tm.x[(k + 1) & 1].data());
    } catch (...) {
      return;
    }
    tm.gathered = k + 1;
  }

  // Phase U of batch bi (the k-th of the run), for both teams; see the header. Updates
  // nothing when the loss is not finite.
  void upper_network(Job& job, Index bi, std::int64_t k) {
    Upper& u = upper_[k & 1];
    const size_t K = layers_.size();
    const Index bs = batch_len(job, bi), o2 = layers_[1].n_out;
    const T mu = static_cast<T>(opt_.sgd.momentum);
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
    // Layers K..3: v = μ v + dz yᵀ (the dW product, beta = μ), dy of the layer below,
    // then θ -= lr v and b's step.
    for (size_t j = K; j-- > 2;) {
      const LayerSlot<T>& L = layers_[j];
      auto db = db_.head(L.n_out);
      dense_backward<T>(ConstWeightMap<T>(L.W, L.n_out, L.n_in), mat(u.y[j - 1]), mat(u.z[j]),
                        mat(u.dy[j]), L.activation, mat(u.dz[j]),
                        WeightMap<T>(L.state_W[0], L.n_out, L.n_in), db, db_tmp_, mat(u.dy[j - 1]),
                        true, mu);
      update_slice<T>(opt_, true, 0, L, 0, nullptr, 0, L.n_out * L.n_in, false);
      update_slice<T>(opt_, true, 0, L, 1, db.data(), 0, L.n_out, false);
    }
    // dz2 = dy2 ⊙ f2'(z2); b2's step (the teams do W2's)
    const LayerSlot<T>& L2 = layers_[1];
    activation_backward<T>(L2.activation, mat(u.z[1]), mat(u.dy[1]), mat(u.dz[1]));
    db_tmp_.head(o2).noalias() = mat(u.dz[1]).rowwise().sum();  // aligned scratch (dense.hpp)
    db_.head(o2) = db_tmp_.head(o2);
    update_slice<T>(opt_, true, 0, L2, 1, db_.data(), 0, o2, false);
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
    const LayerSlot<T>& L1 = layers_[0];
    const T* x = teams_[reuse ? 0 : t].x[k & 1].data();
    const Index bs = batch_len(job, bi), o2 = layers_[1].n_out, m = rows(t);
    const T mu = static_cast<T>(opt_.sgd.momentum);
    const T* dz2 = u.dz[1].data();
    // dy1_t = W2[:, r:r+m]ᵀ dz2, with W2 as the batch saw it
    BatchRef<T> dy1 = tm.dy1.cols(bs), dz1 = tm.dz1.cols(bs);
    product(Op::N, Op::N, m, bs, o2, tm.W2.data(), m, dz2, o2, dy1.data(), m);
    // The team's columns of W2's velocity, v = μ v + dz2 y1_tᵀ (as o2 x m row-major, i.e.
    // m x o2 column-major), then W2 -= lr v.
    product(Op::N, Op::T, m, o2, bs, tm.y1.data(), m, dz2, o2, tm.V2.data(), m, mu);
    sgd_apply_velocity<T>(opt_.sgd, tm.W2.vec(), tm.V2.vec(), false);
    // dz1_t = dy1_t ⊙ f1'(z1_t);  b1_t's step
    activation_backward<T>(L1.activation, tm.z1.cols(bs), dy1, dz1);
    auto db = tm.db.vec();
    db.noalias() = dz1.rowwise().sum();
    LayerSlot<T> b1;  // the team's private b1 entries and their velocity
    b1.b = tm.b1.data();
    b1.state_b[0] = tm.vb1.data();
    b1.n_out = m;
    update_slice<T>(opt_, true, 0, b1, 1, db.data(), 0, m, false);
    // The team's rows of W1: v = μ v + dz1_t xᵀ, W1 -= lr v, in one pass.
    momentum_rows(t, bs, x, dz1.data());
    if (t == 0) {
      RunResult& res = job.out.epochs[static_cast<size_t>(e)];
      res.loss_sum += static_cast<double>(u.loss) * static_cast<double>(bs);
      res.samples += bs;
      res.batches += 1;
    }
    return true;
  }

  void momentum_rows(int t, Index bs, const T* x, const T* dz1) {
#if DENSA_HAVE_MOMENTUM_KERNEL
    if constexpr (std::is_same_v<T, float>) {
      const LayerSlot<T>& L1 = layers_[0];
      const Index n = L1.n_in, r = bounds_[t], m = rows(t);
      MomentumScratch& s = teams_[t].scratch;  // one slab: all of the team's rows
      detail::momentum_update_rows(n, 0, m, bs, x, n, dz1, m, L1.W + r * n, L1.state_W[0] + r * n,
                                   static_cast<float>(opt_.sgd.lr),
                                   static_cast<float>(opt_.sgd.momentum), s.panels(0), s.sliver(0));
      return;
    }
#endif
    (void)t, (void)bs, (void)x, (void)dz1;
    densa::fail("trainer: the momentum kernel is not in this build");  // first_layer_split_applies
  }

  std::vector<LayerSlot<T>> layers_;  // the caller's arrays
  Loss loss_;
  OptimizerConfig opt_;
  Index max_batch_;
  std::array<Index, 3> bounds_{};
  std::array<Team, 2> teams_;
  std::array<std::array<LineBuffer<T>, 2>, 2> partial_;  // [team][batch parity]: P_t
  std::array<Upper, 2> upper_;                           // [batch parity]
  Vector<T> db_, db_tmp_;                                // U's bias gradients
  std::array<Signal, 2> signals_;                        // [team]: batches whose P_t is published
  Signal upper_ready_;                                   // batches whose upper network is done
  Claim claim_;                                          // which team computes it
};

}  // namespace densa
