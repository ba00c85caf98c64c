// Element-wise evaluation whose results do not depend on where arrays sit in memory.
// Pure C++: nothing here knows Python.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

#include "types.hpp"

namespace densa {
namespace detail {

// Every element goes through the same (vectorised) code, wherever it sits in memory.
//
// Eigen evaluates an element-wise expression with SIMD packets, but computes the
// elements before the destination's first aligned address, and the last few, with the
// scalar version of each function, which rounds differently (std::exp against Eigen's
// pexp, a fused multiply-add against a separate multiply and add). Where those elements
// fall depends on the address NumPy happened to allocate: the same call could change in
// the last bit from run to run. So activations are evaluated chunk by chunk on aligned
// local copies whose length is a multiple of every packet size (the last chunk padded
// with zeros): all packets, no scalar edge, results independent of alignment, position
// and thread count.
inline constexpr Index kChunk = 512;  // elements per chunk: a multiple of kPad
inline constexpr Index kPad = 16;     // the widest packet: 16 floats (AVX-512)

template <class T>
using AlignedChunk = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>;

template <class T, std::size_t K, std::size_t... I>
std::array<AlignedChunk<T>, K> make_chunks(T (&buf)[K][kChunk], Index len,
                                           std::index_sequence<I...>) {
  return {AlignedChunk<T>(buf[I], len)...};
}

// out[i] = f(in0[i], in1[i]) for i < n, through aligned chunks; in1 may be null (f then
// receives a chunk of zeros), out may alias in0 or in1. f also receives a scratch chunk
// of the same length: f(in0_chunk, in1_chunk, out_chunk, scratch_chunk).
template <class T, class F>
void for_aligned_chunks(Index n, const T* in0, const T* in1, T* out, F&& f) {
  alignas(64) T a[kChunk];
  alignas(64) T b[kChunk];
  alignas(64) T o[kChunk];
  alignas(64) T s[kChunk];
  for (Index i = 0; i < n; i += kChunk) {
    const Index len = std::min(kChunk, n - i);
    const Index padded = (len + kPad - 1) / kPad * kPad;
    std::copy(in0 + i, in0 + i + len, a);
    std::fill(a + len, a + padded, T(0));
    if (in1) {
      std::copy(in1 + i, in1 + i + len, b);
      std::fill(b + len, b + padded, T(0));
    } else {
      std::fill(b, b + padded, T(0));
    }
    const AlignedChunk<T> ac(a, padded), bc(b, padded);
    AlignedChunk<T> oc(o, padded), sc(s, padded);
    f(ac, bc, oc, sc);
    std::copy(o, o + len, out + i);
  }
}

// Applies f to matching columns of (in0, in1) into out; a whole matrix at once when all
// three are contiguous (the usual case: NumPy batches and the trainer's column blocks).
template <class T, class F>
void for_aligned_chunks(const ConstBatchRef<T>& in0, const ConstBatchRef<T>* in1, BatchRef<T>& out,
                        F&& f) {
  const Index rows = in0.rows(), cols = in0.cols();
  const bool contiguous = (in0.outerStride() == rows || cols == 1) &&
                          (!in1 || in1->outerStride() == rows || cols == 1) &&
                          (out.outerStride() == rows || cols == 1);
  if (contiguous) {
    for_aligned_chunks<T>(rows * cols, in0.data(), in1 ? in1->data() : nullptr, out.data(), f);
    return;
  }
  for (Index j = 0; j < cols; ++j) {
    for_aligned_chunks<T>(rows, in0.data() + j * in0.outerStride(),
                          in1 ? in1->data() + j * in1->outerStride() : nullptr,
                          out.data() + j * out.outerStride(), f);
  }
}

// The same for K flat arrays of n elements: f receives K aligned chunk maps; arrays
// whose `write` flag is set are copied back. Used by the optimizer updates (Eigen's fast
// packet sqrt is an approximation that the scalar edge code does not share).
template <class T, std::size_t K, class F>
void for_aligned_chunks_k(Index n, const std::array<T*, K>& arrays,
                          const std::array<bool, K>& write, F&& f) {
  alignas(64) T buf[K][kChunk];
  for (Index i = 0; i < n; i += kChunk) {
    const Index len = std::min(kChunk, n - i);
    const Index padded = (len + kPad - 1) / kPad * kPad;
    std::array<AlignedChunk<T>, K> chunks =
        make_chunks<T>(buf, padded, std::make_index_sequence<K>{});
    for (std::size_t k = 0; k < K; ++k) {
      std::copy(arrays[k] + i, arrays[k] + i + len, buf[k]);
      std::fill(buf[k] + len, buf[k] + padded, T(0));
    }
    f(chunks);
    for (std::size_t k = 0; k < K; ++k) {
      if (write[k]) std::copy(buf[k], buf[k] + len, arrays[k] + i);
    }
  }
}

}  // namespace detail
}  // namespace densa
