// A copy of a training state's bytes (parameters, optimizer state, Adam's step), taken
// before a fit made of one native call and put back if an update overflows: what
// python/densa/_guard.py's LastFinite does between the chunks of an ordinary fit.
// Pure C++: nothing here knows Python.
#pragma once

#include <cstddef>
#include <cstring>
#include <vector>

namespace densa {

// One array's memory: C-contiguous, so one byte range.
struct ByteSpan {
  void* data = nullptr;
  std::size_t bytes = 0;
};

class Snapshot {
 public:
  // Copies every span's bytes (one buffer for all: one allocation per fit).
  void save(const std::vector<ByteSpan>& spans) {
    std::size_t total = 0;
    for (const ByteSpan& s : spans) total += s.bytes;
    copy_.resize(total);
    std::size_t at = 0;
    for (const ByteSpan& s : spans) {
      if (s.bytes > 0) std::memcpy(copy_.data() + at, s.data, s.bytes);
      at += s.bytes;
    }
    spans_ = spans;
    saved_ = true;
  }

  bool saved() const { return saved_; }

  // Puts the saved bytes back where they came from (the arrays keep their identity).
  void restore() const {
    std::size_t at = 0;
    for (const ByteSpan& s : spans_) {
      if (s.bytes > 0) std::memcpy(s.data, copy_.data() + at, s.bytes);
      at += s.bytes;
    }
  }

 private:
  std::vector<ByteSpan> spans_;
  std::vector<unsigned char> copy_;
  bool saved_ = false;
};

}  // namespace densa
