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

// A record larger than this is refused by the reader: a hostile or corrupt file must
// not make it allocate without bound. The writer stays far below it.
inline constexpr uint64_t kMaxRecordBytes = 512ull << 20;

}  // namespace heaptrail::schema
