// The forward pass of a whole network, for predictions: y_K of a batch in one call.
// Pure C++: nothing here knows Python.
//
// Why one call: predict on the native backend used to cross into the extension once per
// layer, each crossing allocating z and y as NumPy arrays. For a small network that is
// most of the time of a predict right after an idle pause (digits' 450 test samples:
// two layers, four new arrays, ~0.25 ms of a ~0.45 ms predict; docs/performance.md, the
// twentieth session). Here the layers run back to back through workspaces sized once.
//
// The same bits as the layer-by-layer path (tests/test_network_forward.py): each layer is
// dense_forward on the same columns, `chunk` samples at a time, as Network._forward
// slices them.
#pragma once

#include <algorithm>
#include <vector>

#include "activation.hpp"
#include "dense.hpp"
#include "types.hpp"

namespace densa {

// One layer of the network, as the forward pass reads it.
template <class T>
struct ForwardLayer {
  ConstWeightMap<T> W;  // (n_out, n_in), row-major
  ConstVectorMap<T> b;  // (n_out)
  Activation a;
};

// Shapes chain (layer j's W.cols() == layer j-1's W.rows(), layer 0's == x_rows);
// checked whatever the caller checked, so that a mismatch is an exception, never a bad
// read. Returns the last layer's width, y_K's rows.
template <class T>
Index check_forward_shapes(const std::vector<ForwardLayer<T>>& layers, Index x_rows, Index x_cols) {
  DENSA_REQUIRE(!layers.empty(), "network_forward: the network has no layers");
  Index width = x_rows;
  for (size_t j = 0; j < layers.size(); ++j) {
    const ForwardLayer<T>& L = layers[j];
    check_dense_shapes<T>(L.W, L.b.size(), width, x_cols, j == 0 ? "x" : "the previous y");
    width = L.W.rows();
  }
  return width;
}

// out = y_K of x: for each block of `chunk` columns (samples) of x, z_j and y_j of every
// layer in turn, the last layer's y written straight into out's columns.
template <class T>
void network_forward(const std::vector<ForwardLayer<T>>& layers, const ConstBatchRef<T>& x,
                     BatchRef<T> out, Index chunk) {
  const Index n_out = check_forward_shapes<T>(layers, x.rows(), x.cols());
  DENSA_REQUIRE(out.rows() == n_out && out.cols() == x.cols(),
                "network_forward: the output buffer has the wrong shape");
  DENSA_REQUIRE(chunk > 0, "network_forward: chunk must be positive");
  const Index n = x.cols();
  const Index cols = std::min(chunk, n);
  const size_t K = layers.size();
  Index widest = 0, widest_hidden = 0;
  for (size_t j = 0; j < K; ++j) {
    widest = std::max(widest, layers[j].W.rows());
    if (j + 1 < K) widest_hidden = std::max(widest_hidden, layers[j].W.rows());
  }
  // z of the layer being computed, and the hidden layers' y, two in turn (the last
  // layer's goes straight into out): each used as a contiguous (m, c) batch, laid out as
  // the arrays of the layer-by-layer path.
  Vector<T> z(widest * cols), y[2];
  for (Vector<T>& v : y) v.resize(widest_hidden * cols);
  for (Index start = 0; start < n; start += chunk) {
    const Index c = std::min(chunk, n - start);
    for (size_t j = 0; j < K; ++j) {
      const ForwardLayer<T>& L = layers[j];
      const Index m = L.W.rows(), m_in = L.W.cols();
      const ConstBatchRef<T> in =
          j == 0 ? ConstBatchRef<T>(x.middleCols(start, c))
                 : ConstBatchRef<T>(ConstBatchMap<T>(y[(j - 1) & 1].data(), m_in, c));
      const BatchRef<T> yj = j + 1 == K ? BatchRef<T>(out.middleCols(start, c))
                                        : BatchRef<T>(BatchMap<T>(y[j & 1].data(), m, c));
      dense_forward<T>(L.W, L.b, in, L.a, BatchMap<T>(z.data(), m, c), yj);
    }
  }
}

}  // namespace densa
