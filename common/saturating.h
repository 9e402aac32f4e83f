// Counters summed from numbers someone else wrote (a trace's lost-event counts): a
// total that cannot be represented stays at the maximum instead of wrapping to a small,
// reassuring number.
#pragma once

#include <cstdint>
#include <limits>

namespace heaptrail::common {

constexpr uint64_t saturatingAdd(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max() : a + b;
}

}  // namespace heaptrail::common
