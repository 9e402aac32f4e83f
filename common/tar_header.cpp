#include "common/tar_header.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace heaptrail::common::tar {

namespace {

// ustar field offsets and lengths.
constexpr std::size_t kName = 0, kNameLength = 100;
constexpr std::size_t kMode = 100, kUid = 108, kGid = 116, kSize = 124, kMtime = 136, kChecksum = 148;
constexpr std::size_t kType = 156, kMagic = 257, kVersion = 263, kPrefix = 345, kPrefixLength = 155;

// `length - 1` octal digits and a NUL, as tar writes numbers.
bool putOctal(Block& b, std::size_t at, std::size_t length, uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "%0*llo", static_cast<int>(length - 1), static_cast<unsigned long long>(value));
  if (std::strlen(text) != length - 1) return false;
  std::memcpy(&b[at], text, length);
  return true;
}

unsigned checksum(const Block& b) {
  unsigned sum = 0;
  for (std::size_t i = 0; i < kBlockSize; ++i)
    sum += (i >= kChecksum && i < kChecksum + 8) ? ' ' : static_cast<unsigned char>(b[i]);
  return sum;
}

std::optional<uint64_t> getOctal(const Block& b, std::size_t at, std::size_t length) {
  uint64_t value = 0;
  bool digits = false;
  for (std::size_t i = at; i < at + length; ++i) {
    const char c = b[i];
    if (c == '\0' || c == ' ') {
      if (digits) break;
      continue;
    }
    if (c < '0' || c > '7' || value > (UINT64_MAX >> 3)) return std::nullopt;
    value = value * 8 + static_cast<uint64_t>(c - '0');
    digits = true;
  }
  if (!digits) return std::nullopt;
  return value;
}

std::string field(const Block& b, std::size_t at, std::size_t length) {
  const char* begin = &b[at];
  return std::string(begin, std::find(begin, begin + length, '\0'));
}

}  // namespace

std::optional<Block> regularFileHeader(std::string_view name, uint64_t size, uint32_t mode, uint64_t mtime) {
  if (name.empty() || name.size() >= kNameLength) return std::nullopt;
  Block b{};
  std::memcpy(&b[kName], name.data(), name.size());
  if (!putOctal(b, kMode, 8, mode & 07777) || !putOctal(b, kUid, 8, 0) || !putOctal(b, kGid, 8, 0) ||
      !putOctal(b, kSize, 12, size) || !putOctal(b, kMtime, 12, mtime))
    return std::nullopt;
  b[kType] = '0';
  std::memcpy(&b[kMagic], "ustar", 6);
  std::memcpy(&b[kVersion], "00", 2);
  char sum[8];
  std::snprintf(sum, sizeof sum, "%06o", checksum(b));
  std::memcpy(&b[kChecksum], sum, 7);
  b[kChecksum + 7] = ' ';
  return b;
}

HeaderStatus parseHeader(const Block& b, Member& out) {
  if (std::all_of(b.begin(), b.end(), [](char c) { return c == 0; })) return HeaderStatus::EndOfArchive;
  const auto recorded = getOctal(b, kChecksum, 8);
  if (!recorded || *recorded != checksum(b)) return HeaderStatus::Invalid;
  if (std::memcmp(&b[kMagic], "ustar", 5) != 0) return HeaderStatus::Invalid;
  const auto size = getOctal(b, kSize, 12);
  if (!size) return HeaderStatus::Invalid;
  const std::string prefix = field(b, kPrefix, kPrefixLength);
  out.name = prefix.empty() ? field(b, kName, kNameLength) : prefix + "/" + field(b, kName, kNameLength);
  out.size = *size;
  out.type = b[kType];
  return HeaderStatus::Member;
}

}  // namespace heaptrail::common::tar
