// Costs on the output batch y_K (m_K x N, a column per sample), summed over outputs and
// averaged over samples, each fused with its gradient dy_K = dJ/dy_K (docs/backprop.md,
// "The cost and its gradient dy_K"). The cross-entropy losses take logits: softmax and sigmoid are
// folded into the loss, where they are numerically stable.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

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

// A thread's scratch for the softmax below: grown, never shrunk, so a training run
// allocates once; 64-byte aligned (Eigen's packet path on every element, see
// elementwise.hpp).
template <class T>
T* softmax_scratch(Index size) {
  thread_local std::vector<T> buf;
  const Index pad = 64 / static_cast<Index>(sizeof(T));
  if (static_cast<Index>(buf.size()) < size + pad) buf.resize(static_cast<size_t>(size + pad));
  const auto addr = reinterpret_cast<std::uintptr_t>(buf.data());
  return buf.data() + ((64 - addr % 64) % 64) / sizeof(T);
}

// Softmax cross-entropy over logits z (m x n), per column:
//   J_n = lse(z_n) Σ_k t_k - Σ_k t_k z_k = Σ_k t_k · log(s) - Σ_k t_k (z_k - max z)
//   with s = Σ_k exp(z_k - max z), and dy_k = (exp(z_k - max z) / s · Σ t - t_k) / N.
// Writing it with the shifted logits keeps max z out of the sum (no cancellation).
//
// Each sample's maximum and sums run over k in a fixed order, which is a chain of
// dependent operations: walked sample by sample they are latency-bound. So the work runs
// on a row per sample (z[k·ld + i] is z_k of sample i), P samples at a time, one SIMD lane
// per sample (P = Eigen's packet size for T): each step over k is one packet operation,
// every lane doing what the per-sample loop did, in the same order. Written with Eigen's
// packet functions directly (its exp and log, compares and blends): as array
// expressions, the maximum (a Select, which Eigen 3.4 does not vectorise) ran a lane at a
// time and the copies between blocks cost as much as the arithmetic (a digits batch,
// 32 x 10: 1196 -> 780 ticks, dy the same bits, J within a few ulp as its sum over
// samples now runs per lane; docs/performance.md, the eleventh session). A last group of
// fewer than P samples goes through a copy padded with zeros, so every lane of every
// sample takes the same packet path: the bits depend neither on where arrays sit nor on
// a sample's place in the batch.

template <class T>
using SoftmaxPacket = typename Eigen::internal::packet_traits<T>::type;

// The group of P samples at z, t (z_k at z + k·ld_z, t_k at t + k·ld_t): each lane's
// J_n = Σ_k t_k · log(s) - Σ_k t_k (z_k - max z), and dy if asked for.
// e: m·P aligned scratch for the exponentials.
template <class T>
SoftmaxPacket<T> softmax_group(const T* z, Index ld_z, const T* t, Index ld_t, T* dy, Index ld_dy,
                               Index m, T inv_n, T* e) {
  namespace pk = Eigen::internal;
  using Packet = SoftmaxPacket<T>;
  constexpr Index P = pk::packet_traits<T>::size;
  Packet zmax = pk::ploadu<Packet>(z);
  for (Index k = 1; k < m; ++k) {  // z_k > max ? z_k : max, so a NaN z_k is never the max
    const Packet zk = pk::ploadu<Packet>(z + k * ld_z);
    zmax = pk::pselect(pk::pcmp_lt(zmax, zk), zk, zmax);
  }
  // A NaN or inf anywhere makes some z_k - max z NaN, and so J: divergence is seen.
  Packet ts = pk::pset1<Packet>(T(0)), s = ts, tsum = ts;
  for (Index k = 0; k < m; ++k) {
    const Packet zs = pk::psub(pk::ploadu<Packet>(z + k * ld_z), zmax);  // z_k - max z
    const Packet tk = pk::ploadu<Packet>(t + k * ld_t);
    ts = pk::padd(ts, pk::pmul(tk, zs));  // Σ t_k (z_k - max z)
    const Packet ek = pk::pexp(zs);
    pk::pstore(e + k * P, ek);
    s = pk::padd(s, ek);
    tsum = pk::padd(tsum, tk);
  }
  if (dy) {
    const Packet scale = pk::pdiv(tsum, s);  // one division per sample
    const Packet inv = pk::pset1<Packet>(inv_n);
    for (Index k = 0; k < m; ++k) {
      const Packet tk = pk::ploadu<Packet>(t + k * ld_t);
      const Packet ek = pk::pload<Packet>(e + k * P);
      pk::pstoreu(dy + k * ld_dy, pk::pmul(pk::psub(pk::pmul(ek, scale), tk), inv));
    }
  }
  return pk::psub(pk::pmul(tsum, pk::plog(s)), ts);  // Σ_k t_k · lse, less max z
}

// Values rounded up to whole 64-byte lines of float or double (16 values), so that every
// part of the scratch starts aligned.
inline Index whole_lines(Index values) { return (values + 15) / 16 * 16; }

// The scratch softmax_rows needs, in values of T: the exponentials of a
// group, and a padded copy of the last group's z, t and dy.
template <class T>
Index softmax_rows_scratch(Index m) {
  return 4 * whole_lines(m * Eigen::internal::packet_traits<T>::size);
}

// n samples held a row per sample (see above): adds each group's J_n to the lanes of
// `total`, and writes dy when not null. scratch: softmax_rows_scratch(m) values, 64-byte
// aligned. Each lane sums its samples' J_n in the order of the groups, so that a batch
// taken in parts of a whole number of groups sums them as the whole batch would.
template <class T>
void softmax_rows(const T* z, Index ld_z, const T* t, Index ld_t, T* dy, Index ld_dy, Index n,
                  Index m, T inv_n, T* scratch, SoftmaxPacket<T>& total) {
  namespace pk = Eigen::internal;
  constexpr Index P = pk::packet_traits<T>::size;
  const Index part = whole_lines(m * P), full = n / P * P;
  T* e = scratch;
  for (Index j = 0; j < full; j += P) {
    total = pk::padd(total, softmax_group<T>(z + j, ld_z, t + j, ld_t, dy ? dy + j : nullptr, ld_dy,
                                             m, inv_n, e));
  }
  if (const Index rest = n - full; rest > 0) {
    // Padding samples are zeros: t = 0, so their J_n is 0 · log(m) - 0 = 0, and their dy
    // is never copied out.
    T* tail_z = e + part;
    T* tail_t = tail_z + part;
    T* tail_dy = tail_t + part;
    for (Index k = 0; k < m; ++k) {
      std::fill(std::copy(z + k * ld_z + full, z + k * ld_z + n, tail_z + k * P),
                tail_z + (k + 1) * P, T(0));
      std::fill(std::copy(t + k * ld_t + full, t + k * ld_t + n, tail_t + k * P),
                tail_t + (k + 1) * P, T(0));
    }
    total = pk::padd(
        total, softmax_group<T>(tail_z, P, tail_t, P, dy ? tail_dy : nullptr, P, m, inv_n, e));
    if (dy) {
      for (Index k = 0; k < m; ++k) {
        std::copy(tail_dy + k * P, tail_dy + k * P + rest, dy + k * ld_dy + full);
      }
    }
  }
}

// The column-per-sample layout goes through transposed copies of this many samples at a
// time (a whole number of groups for every packet size), so that the scratch grows with
// the number of classes, never with the batch.
inline constexpr Index kSoftmaxChunk = 256;

// SamplesInRows: z, t and dy hold a row per sample (n x m), as the hidden split keeps its
// output layer (hidden_split.hpp), and are read in place. Otherwise (a column per sample)
// they go through transposed copies: the same operations on the same values, so the same
// J and dy bits either way.
// The lanes of J are summed in Eigen's fixed order at the end.
template <class T, bool SamplesInRows = false>
T softmax_cross_entropy(const ConstBatchRef<T>& z, const ConstBatchRef<T>& t, BatchRef<T>* dy,
                        T inv_n) {
  namespace pk = Eigen::internal;
  SoftmaxPacket<T> total = pk::pset1<SoftmaxPacket<T>>(T(0));
  if constexpr (SamplesInRows) {
    const Index n = z.rows(), m = z.cols();
    softmax_rows<T>(z.data(), z.outerStride(), t.data(), t.outerStride(), dy ? dy->data() : nullptr,
                    dy ? dy->outerStride() : 0, n, m, inv_n,
                    softmax_scratch<T>(softmax_rows_scratch<T>(m)), total);
  } else {
    const Index m = z.rows(), n = z.cols(), size = whole_lines(kSoftmaxChunk * m);
    T* zt = softmax_scratch<T>(3 * size + softmax_rows_scratch<T>(m));
    T* tt = zt + size;
    T* dyt = tt + size;
    using Rows = Eigen::Map<Matrix<T>>;  // nc x m: a row per sample
    for (Index j0 = 0; j0 < n; j0 += kSoftmaxChunk) {
      const Index nc = std::min(kSoftmaxChunk, n - j0);
      Rows(zt, nc, m).noalias() = z.middleCols(j0, nc).transpose();
      Rows(tt, nc, m).noalias() = t.middleCols(j0, nc).transpose();
      softmax_rows<T>(zt, nc, tt, nc, dy ? dyt : nullptr, nc, nc, m, inv_n, dyt + size, total);
      if (dy) dy->middleCols(j0, nc).noalias() = Rows(dyt, nc, m).transpose();
    }
  }
  return pk::predux(total) * inv_n;
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
//
// SamplesInRows: out, target and dy hold a row per sample (N x m_K) instead of a column
// (see softmax_cross_entropy). dy is then the same bits, element for element; J of mse
// and binary cross-entropy is summed in another order.
template <class T, bool SamplesInRows = false>
T loss_forward_backward(Loss loss, const ConstBatchRef<T>& out, const ConstBatchRef<T>& target,
                        BatchRef<T>* dy) {
  if constexpr (SamplesInRows) {
    check_loss_shapes(out.cols(), out.rows(), target.cols(), target.rows());
  } else {
    check_loss_shapes(out.rows(), out.cols(), target.rows(), target.cols());
  }
  const Index n = SamplesInRows ? out.rows() : out.cols();
  DENSA_REQUIRE(n > 0, "loss: the batch has no samples");
  if (dy) {
    DENSA_REQUIRE(dy->rows() == out.rows() && dy->cols() == out.cols(),
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
      return detail::softmax_cross_entropy<T, SamplesInRows>(out, target, dy, inv_n);
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
