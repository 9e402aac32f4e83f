// Hexadecimal text of numbers and raw bytes (addresses, offsets, build-ids).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace heaptrail::common {

// "0x7f12ab" (lower case, no padding).
std::string hexNumber(uint64_t value);
// Two lower-case digits per byte: build-ids.
std::string hexBytes(std::string_view raw);
// The inverse of hexBytes; "" when `hex` is not an even number of hex digits.
std::string bytesFromHex(std::string_view hex);

}  // namespace heaptrail::common
