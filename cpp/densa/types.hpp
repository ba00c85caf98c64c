// Eigen views densa computes on. Pure C++: nothing here knows Python.
//
// A batch of N samples with m features is held by NumPy as an (N, m) C-contiguous
// array. Read in column-major order, those bytes are the m x N matrix of docs/backprop.md
// (one column per sample), so kernels map them as column-major without a copy.
// W (m_out, m_in) C-contiguous is the same matrix as the equations, mapped row-major.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace densa {

using Index = Eigen::Index;

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// Column-major m x N view of an (N, m) batch.
template <class T>
using BatchMap = Eigen::Map<Matrix<T>>;
template <class T>
using ConstBatchMap = Eigen::Map<const Matrix<T>>;
// Row-major m_out x m_in view of W.
template <class T>
using WeightMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstWeightMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using VectorMap = Eigen::Map<Vector<T>>;
template <class T>
using ConstVectorMap = Eigen::Map<const Vector<T>>;

// Kernels take Refs so that they accept both maps of caller memory and column blocks
// of the trainer's workspaces (a minibatch is a block of columns), without copies.
template <class T>
using BatchRef = Eigen::Ref<Matrix<T>>;
template <class T>
using ConstBatchRef = Eigen::Ref<const Matrix<T>>;
template <class T>
using WeightRef = Eigen::Ref<RowMatrix<T>>;
template <class T>
using ConstWeightRef = Eigen::Ref<const RowMatrix<T>>;
template <class T>
using VectorRef = Eigen::Ref<Vector<T>>;
template <class T>
using ConstVectorRef = Eigen::Ref<const Vector<T>>;

// Shape agreement is checked again here, whatever the caller checked: a mismatch
// must become an exception, never an out-of-bounds read.
[[noreturn]] inline void fail(const std::string& message) { throw std::invalid_argument(message); }

// The message is an expression evaluated only on failure: building strings on every call
// cost several microseconds per training batch of a small network.
#define DENSA_REQUIRE(ok, message)     \
  do {                                 \
    if (!(ok)) ::densa::fail(message); \
  } while (false)

// Sample i of a minibatch, read from the caller's order while training: checked again
// here, not only before the run, because the order array stays the caller's and another
// thread may write to it meanwhile (Python releases the GIL while training runs). One
// compare per sample; the failure path is out of line.
inline Index sample_index(std::int64_t i, Index n_samples) {
  if (static_cast<std::uint64_t>(i) >= static_cast<std::uint64_t>(n_samples)) {
    fail("trainer: order changed during training: it now holds " + std::to_string(i) +
         " but X has " + std::to_string(n_samples) + " samples");
  }
  return static_cast<Index>(i);
}

inline std::string shape_str(Index rows, Index cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

}  // namespace densa
