// The POSIX ustar archive format, as far as heaptrail's bundles need it: regular files
// with short names. The recorder writes bundles, the analyzer reads them; `tar` reads
// both (a bundle is a zstd-compressed tar: `tar --zstd -tvf app.bundle`).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace heaptrail::common::tar {

inline constexpr std::size_t kBlockSize = 512;
using Block = std::array<char, kBlockSize>;

// Size of a member's data in the archive: rounded up to whole blocks.
constexpr uint64_t paddedSize(uint64_t size) { return (size + kBlockSize - 1) / kBlockSize * kBlockSize; }

// The header block of a regular file; nullopt when the name does not fit (99 bytes) or
// the size exceeds ustar's 8 GiB.
std::optional<Block> regularFileHeader(std::string_view name, uint64_t size, uint32_t mode, uint64_t mtime);

struct Member {
  std::string name;
  uint64_t size = 0;
  char type = '0';  // '0' (or '\0'): regular file; anything else is another kind
};

enum class HeaderStatus { Member, EndOfArchive, Invalid };
// Reads one header block: EndOfArchive for an all-zero block; Invalid for a wrong
// checksum, a missing "ustar" magic or an unreadable size.
HeaderStatus parseHeader(const Block& block, Member& out);

}  // namespace heaptrail::common::tar
