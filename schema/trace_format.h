#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace heaptrail::schema {

// The file starts with a zstd skippable frame (so `zstd -d` still works on the file)
// whose payload is kFileMagic. See trace.capnp for the whole layout.
inline constexpr uint32_t kSkippableFrameMagic = 0x184D2A50;
inline constexpr std::array<char, 16> kFileMagic = {'h', 'e', 'a', 'p', 't', 'r', 'a', 'i',
                                                    'l', '-', 't', 'r', 'a', 'c', 'e', '\0'};
inline constexpr size_t kPreambleSize = 8 + kFileMagic.size();

// A record that decompresses to more than this is skipped by the reader (a one-line
// warning): a hostile or corrupt file (a "decompression bomb") must not make it allocate
// or work without bound. Real records stay far below it: a chunk holds at most 8192
// events and the stacks they first use (a few MiB at most); the largest header, a kernel
// recording's /proc/kallsyms snapshot, is about 10 MiB.
inline constexpr uint64_t kMaxRecordBytes = 64ull << 20;

}  // namespace heaptrail::schema
