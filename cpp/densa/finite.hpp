// Whether floating-point arrays hold only finite values, for fit's copy of the last
// finite training state (python/densa/_guard.py). Pure C++: nothing here knows Python.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "types.hpp"

namespace densa {

// True when none of p[0..n) is NaN or inf: those, and only those, have every exponent
// bit set. Integer tests, so the loop vectorises without reassociating float math.
template <class T>
bool all_finite(const T* p, Index n) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits bad = 0;
  for (Index i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, p + i, sizeof b);
    bad |= static_cast<Bits>((b & exponent) == exponent);
  }
  return bad == 0;
}

}  // namespace densa
