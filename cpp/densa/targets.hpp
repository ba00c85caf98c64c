// Class labels as one-hot rows, for fit's targets (python/densa/losses.py,
// encode_targets). Pure C++: nothing here knows Python.
//
// Why native: NumPy builds them with a minimum and a maximum (the range check), a zeroed
// array and a fancy-indexed store, four separate paths through its machinery. Right
// after an idle pause, when every page of code a call touches must come back into the
// caches and address translations, those paths cost a digits fit ~1.5 ms (its labels'
// minimum alone 1.07 ms, on the seventeenth session's machine); one pass here touches
// one loop's code.
#pragma once

#include <cstdint>

#include "types.hpp"

namespace densa {

// rows (n x n_classes, row-major) = the one-hot rows of labels[0..n), unless a label lies
// outside [0, n_classes): then returns false, having written some rows (the caller
// discards them and reports the labels' range its own way).
template <class T>
bool one_hot_rows(const std::int64_t* labels, Index n, Index n_classes, T* rows) {
  for (Index i = 0; i < n; ++i) {
    const std::int64_t label = labels[i];
    if (label < 0 || label >= n_classes) return false;
    T* row = rows + i * n_classes;
    for (Index k = 0; k < n_classes; ++k) row[k] = T(0);
    row[label] = T(1);
  }
  return true;
}

}  // namespace densa
