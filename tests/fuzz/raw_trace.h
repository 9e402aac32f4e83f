// The "raw" fuzzing format: "HTRAW" then records of [u32 little-endian length][bytes],
// each an uncompressed Cap'n Proto message. The fuzzer compresses them into a real trace
// so that mutations reach the Cap'n Proto and replay layers instead of dying in zstd's
// checksum. raw_seed converts real traces into this format for the seed corpus.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <zstd.h>

#include "schema/trace_format.h"

namespace heaptrail::fuzz {

inline constexpr std::string_view kRawMagic = "HTRAW";

// Builds trace file bytes from raw input; false if `input` is not in the raw format.
inline bool rawToTrace(const uint8_t* data, size_t size, std::string& trace) {
  if (size < kRawMagic.size() || std::memcmp(data, kRawMagic.data(), kRawMagic.size()) != 0) return false;
  trace.assign(schema::kPreambleSize, '\0');
  const uint32_t magic = schema::kSkippableFrameMagic, length = schema::kFileMagic.size();
  std::memcpy(trace.data(), &magic, 4);
  std::memcpy(trace.data() + 4, &length, 4);
  std::memcpy(trace.data() + 8, schema::kFileMagic.data(), length);
  size_t at = kRawMagic.size();
  std::string frame;
  while (at + 4 <= size) {
    uint32_t n = 0;
    std::memcpy(&n, data + at, 4);
    at += 4;
    n = static_cast<uint32_t>(std::min<size_t>(n, size - at));
    frame.resize(ZSTD_compressBound(n));
    const size_t c = ZSTD_compress(frame.data(), frame.size(), data + at, n, 1);
    if (ZSTD_isError(c)) return false;
    trace.append(frame.data(), c);
    at += n;
  }
  return true;
}

}  // namespace heaptrail::fuzz
