#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace heaptrail::common {

// "250ms", "60s", "5m", "1h", "1.5s", "30" (seconds) -> nanoseconds; nullopt if malformed.
std::optional<uint64_t> parseDuration(std::string_view text);
// "4096", "64k", "64KiB", "4M", "1G" (powers of 1024) -> bytes; nullopt if malformed.
std::optional<uint64_t> parseSize(std::string_view text);

// 12.3 s, 450 ms, 2.0 min, ...
std::string formatDuration(uint64_t ns);
// 123 B, 4.0 KiB, 1.5 MiB, ...
std::string formatBytes(uint64_t bytes);

}  // namespace heaptrail::common
