// The schedule shared by the two loops that train one network on two threads at once,
// each thread (a team) owning a slice of one layer's units: hidden_split.hpp (networks of
// one hidden layer) and first_layer_split.hpp (a wide first layer under small ones).
// Pure C++: nothing here knows Python.
//
// Per batch k, each team
//   A  gathers the minibatch (its own copy, unless gathered ahead) and computes what its
//      slice contributes, then publishes it (Split::phase_a);
//   S  the first team to get there computes what both need from both contributions
//      (Split::prepare_shared before waiting for the other's, Split::shared_phase after)
//      and publishes it; the other gathers its next minibatch meanwhile and waits;
//   B  updates its own slices from it (Split::phase_b, false when the batch's loss is not
//      finite: then nothing is updated and both teams stop).
// Which team computes S changes no bits: the same code on the same values. With one
// thread (the pool busy, or one CPU allowed), the caller runs both teams' phases in turn,
// team 1 reusing team 0's minibatch: the same bits as two threads.
//
// A Split (CRTP) derives from TwoTeams<Split, T> and provides phase_a, prepare_shared,
// shared_phase, phase_b and copy_slices(t, in) (the team's private copies, in when a run
// starts and back however it ends).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

#include "parallel.hpp"
#include "parameters.hpp"
#include "teamwork.hpp"
#include "types.hpp"

namespace densa {

// Per-epoch outcome of a split's run.
struct SplitRun {
  std::vector<RunResult> epochs;  // one per epoch started
  std::vector<double> seconds;    // per completed epoch
};

// One run call: its arguments, and what the teams report.
template <class T>
struct TeamJob {
  const ConstBatchRef<T>& X;
  const ConstBatchRef<T>& targets;
  const std::int64_t* orders;
  Index n_epochs, n_order, batch_size, first_batch, end_batch;
  SplitRun out{};
  std::int64_t updates = 0;    // batches that updated the parameters
  std::exception_ptr error{};  // the first failure of either team
  std::atomic<bool> failed{false};
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> cpu[2] = {-1, -1};   // [team]: the CPU it ran its last batch on
  std::atomic<int> team_on_caller{-1};  // set before the first exchange, read after
  // [team][epoch]: the L2 penalty of the team's slices (RunResult::penalty_sum), each
  // team writing its own, and [2][epoch] that of the layers the shared phase updates;
  // summed into out.epochs after both teams have finished, in that order.
  std::array<std::vector<double>, 3> penalty{};

  TeamJob(const ConstBatchRef<T>& X_, const ConstBatchRef<T>& targets_, const std::int64_t* orders_,
          Index n_epochs_, Index n_order_, Index batch_size_, Index first_batch_, Index end_batch_)
      : X(X_),
        targets(targets_),
        orders(orders_),
        n_epochs(n_epochs_),
        n_order(n_order_),
        batch_size(batch_size_),
        first_batch(first_batch_),
        end_batch(end_batch_) {
    out.epochs.resize(static_cast<size_t>(n_epochs));
    for (auto& p : penalty) p.assign(static_cast<size_t>(n_epochs), 0.0);
  }

  // Batch `bi` of epoch e: its first sample's position in the orders and its size.
  Index batch_start(Index e, Index bi) const { return e * n_order + bi * batch_size; }
  Index batch_len(Index bi) const { return std::min(batch_size, n_order - bi * batch_size); }
};

// Storage of a team's private slice of one layer: W (or b) and up to two optimizer
// states, on cache lines of their own (LineBuffer says why).
template <class T>
struct SliceMem {
  LineBuffer<T> param, state[2];
};

// A slot over private buffers shaped like (rows x cols) W values and `rows` b values
// (cols = 0: b only), with the optimizer state L has.
template <class T>
LayerSlot<T> private_slot(const LayerSlot<T>& L, Index rows, Index cols, SliceMem<T> (&mem)[2]) {
  LayerSlot<T> s = L;
  s.n_out = rows;
  s.n_in = cols;
  for (int which = 0; which < 2; ++which) {
    const Index size = which == 0 ? rows * cols : rows;
    SliceMem<T>& sm = mem[which];
    sm.param.resize(size, 1);
    T*& param = which == 0 ? s.W : s.b;
    param = sm.param.data();
    for (int k = 0; k < 2; ++k) {
      T*& state = which == 0 ? s.state_W[k] : s.state_b[k];
      if (state) {
        sm.state[k].resize(size, 1);
        state = sm.state[k].data();
      }
    }
  }
  return s;
}

// Between the caller's array and a team's private copy of a slice: `count` runs of `len`
// values, run i at caller + i·stride, packed one after another in `mine`; into the copy
// (in) or back to the caller's array. Nothing for a null `caller` (an optimizer state the
// optimizer does not have).
template <class T>
void copy_slice_runs(bool in, T* caller, T* mine, Index count, Index len, Index stride) noexcept {
  if (!caller) return;
  for (Index i = 0; i < count; ++i) {
    if (in) {
      std::copy(caller + i * stride, caller + i * stride + len, mine + i * len);
    } else {
      std::copy(mine + i * len, mine + (i + 1) * len, caller + i * stride);
    }
  }
}

template <class Split, class T>
class TwoTeams {
 public:
  using Job = TeamJob<T>;

 protected:
  // x buffers for every team, n_in x max_batch each.
  void size_inputs(Index n_in, Index max_batch) {
    for (Input& in : inputs_)
      for (auto& x : in.x) x.resize(n_in, max_batch);
  }

  // Runs both teams over the job; rethrows the first failure of either. The penalties
  // are summed into job.out.
  void run_teams(Job& job) {
    for (auto& s : signals_) s.reset();
    shared_ready_.reset();
    claim_.last.store(-1, std::memory_order_relaxed);
    for (Input& in : inputs_) in.gathered = -1;
    const auto team_task = [&](std::int64_t t) { run_team(job, static_cast<int>(t)); };
    // Two threads only where two CPUs are allowed: on one, the teams would take turns a
    // time slice at a time.
    if (allowed_cpus() < 2 || !thread_pool().run_pair(team_task)) run_interleaved(job);
    if (job.error) std::rethrow_exception(job.error);
    for (size_t e = 0; e < job.out.epochs.size(); ++e)
      job.out.epochs[e].penalty_sum = (job.penalty[0][e] + job.penalty[1][e]) + job.penalty[2][e];
  }

  // Team t's minibatch of batch k (bi of epoch e), gathered now unless gathered ahead.
  // reuse: team 0's (one thread running both teams in turn), already gathered.
  const T* minibatch(Job& job, int t, Index e, Index bi, std::int64_t k, bool reuse) {
    Input& in = inputs_[static_cast<size_t>(t)];
    if (!reuse && in.gathered != k) {
      gather(job.X, job.orders + job.batch_start(e, bi), job.batch_len(bi), in.x[k & 1].data());
      in.gathered = k;
    }
    return input(t, k, reuse);
  }

  // The minibatch minibatch() gave team t for batch k.
  const T* input(int t, std::int64_t k, bool reuse) const {
    return inputs_[reuse ? 0 : static_cast<size_t>(t)].x[k & 1].data();
  }

  // Columns idx[0..bs) of the column-major `from` into the contiguous `to`.
  static void gather(const ConstBatchRef<T>& from, const std::int64_t* idx, Index bs, T* to) {
    const Index rows = from.rows(), ld = from.outerStride();
    for (Index c = 0; c < bs; ++c) {
      const T* col = from.data() + sample_index(idx[c], from.cols()) * ld;
      std::copy(col, col + rows, to + c * rows);
    }
  }

 private:
  struct Input {
    LineBuffer<T> x[2];          // [batch parity]: the gathered minibatch
    std::int64_t gathered = -1;  // the batch (its place k in the run) in x[k & 1]
  };

  struct alignas(64) Claim {             // a cache line of its own: both teams write it
    std::atomic<std::int64_t> last{-1};  // the last batch whose shared phase is taken
  };

  Split& split() { return static_cast<Split&>(*this); }

  // One team's whole run, concurrently with the other's. Both teams walk the same
  // batches and see the same losses, so they stop at the same batch.
  void run_team(Job& job, int t) {
    split().copy_slices(t, true);
    // The team on the pool's worker leaves the caller's CPU if it finds itself on it
    // (cpu_placement.hpp says why), until the run ends.
    // With more than two threads, both teams may be on workers: then team 1 moves.
    const bool on_caller = std::this_thread::get_id() == job.caller;
    if (on_caller) job.team_on_caller.store(t, std::memory_order_relaxed);
    std::optional<AvoidCpu> apart;
    int last_cpu = -2;  // none yet: the first batch stores its CPU
    try {
      std::int64_t k = 0;  // the batch's position in the run
      bool go = true;
      for (Index e = 0; go && e < job.n_epochs; ++e) {
        const auto t0 = std::chrono::steady_clock::now();
        for (Index bi = job.first_batch; go && bi < job.end_batch; ++bi) {
          split().phase_a(job, t, e, bi, k, false);
          // Stored only when it changes: the two teams' entries share a line, and a store
          // to it every batch made the claim below wait for the line to come back from
          // the other team's core (2.5% of a digits fit, docs/performance-history.md).
          const int cpu = current_cpu();
          if (cpu != last_cpu) job.cpu[t].store(cpu, std::memory_order_relaxed);
          last_cpu = cpu;
          // The first team here computes the shared phase for both; the other gathers its
          // next minibatch meanwhile. Taken before this team's part is published, so that
          // the other team cannot be a batch ahead.
          std::int64_t before = k - 1;
          const bool computes_shared =
              claim_.last.compare_exchange_strong(before, k, std::memory_order_acq_rel);
          signals_[t].publish(k + 1);
          if (computes_shared) {
            split().prepare_shared(job, e, bi, k);  // what needs no partner, before waiting
            go = signals_[1 - t].wait_for(k + 1);   // false: the other team failed
            if (go) split().shared_phase(job, e, bi, k);
            shared_ready_.publish(k + 1);
          } else {
            gather_ahead(job, t, e, bi, k);
            go = shared_ready_.wait_for(k + 1);
          }
          const int caller_team = job.team_on_caller.load(std::memory_order_relaxed);
          const bool mover = !on_caller && (caller_team == 1 - t || (caller_team < 0 && t == 1));
          if (mover && !apart && cpu >= 0 &&
              job.cpu[1 - t].load(std::memory_order_relaxed) == cpu) {
            apart.emplace(cpu);
          }
          go = go && split().phase_b(job, t, e, bi, k, false);
          k += go;
        }
        if (go && t == 0) record_epoch_time(job, t0);
      }
      if (t == 0) job.updates = k;
    } catch (...) {
      fail(job);
    }
    split().copy_slices(t, false);
  }

  // Both teams' phases in turn on the calling thread: the same work, the same bits.
  void run_interleaved(Job& job) {
    split().copy_slices(0, true);
    split().copy_slices(1, true);
    try {
      std::int64_t k = 0;
      bool go = true;
      for (Index e = 0; go && e < job.n_epochs; ++e) {
        const auto t0 = std::chrono::steady_clock::now();
        for (Index bi = job.first_batch; go && bi < job.end_batch; ++bi) {
          // Team 1 reuses team 0's minibatch: the same numbers, so the same bits without
          // the duplicated work.
          split().phase_a(job, 0, e, bi, k, false);
          split().phase_a(job, 1, e, bi, k, true);
          split().prepare_shared(job, e, bi, k);
          split().shared_phase(job, e, bi, k);
          go = split().phase_b(job, 0, e, bi, k, false);
          if (go) split().phase_b(job, 1, e, bi, k, true);
          k += go;
        }
        if (go) record_epoch_time(job, t0);
      }
      job.updates = k;
    } catch (...) {
      fail(job);
    }
    split().copy_slices(0, false);
    split().copy_slices(1, false);
  }

  void fail(Job& job) {
    if (!job.failed.exchange(true)) job.error = std::current_exception();
    for (auto& s : signals_) s.abort();
    shared_ready_.abort();
  }

  static void record_epoch_time(Job& job, std::chrono::steady_clock::time_point t0) {
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    job.out.seconds.push_back(dt.count());
  }

  // The next batch's minibatch into team t's other x buffer, while the other team
  // computes the shared phase of batch k (bi of epoch e).
  void gather_ahead(Job& job, int t, Index e, Index bi, std::int64_t k) {
    Index e_next = e, bi_next = bi + 1;
    if (bi_next >= job.end_batch) {
      if (e + 1 >= job.n_epochs) return;  // the run's last batch
      e_next = e + 1;
      bi_next = job.first_batch;
    }
    Input& in = inputs_[static_cast<size_t>(t)];
    // An index out of range (an order changed during the run, sample_index) is left for
    // phase A of the next batch to find again and throw: thrown here, it would stop this
    // team before its phase B of batch k, after the other team's, and leave batch k half
    // applied. From phase A, no part of batch k + 1 is applied.
    try {
      gather(job.X, job.orders + job.batch_start(e_next, bi_next), job.batch_len(bi_next),
             in.x[(k + 1) & 1].data());
    } catch (...) {
      return;
    }
    in.gathered = k + 1;
  }

  std::array<Input, 2> inputs_;    // [team]
  std::array<Signal, 2> signals_;  // [team]: batches whose phase A is published
  Signal shared_ready_;            // batches whose shared phase is done
  Claim claim_;                    // which team computes it
};

}  // namespace densa
