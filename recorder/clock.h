#pragma once

#include <time.h>

#include <cstdint>

namespace heaptrail::recorder {

// Nanoseconds of `clock`; CLOCK_MONOTONIC is the clock of bpf_ktime_get_ns() and of the
// whole trace.
inline uint64_t clockNs(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace heaptrail::recorder
