// Bounds-checked little-endian reader over one DWARF section: every read past the end
// sets `failed()` and returns 0 instead of touching memory outside the section.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace heaptrail::symbols {

class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::span<const uint8_t> bytes, std::size_t offset = 0) : bytes_(bytes), pos_(offset) {
    if (offset > bytes.size()) fail();
  }

  bool failed() const { return failed_; }
  std::size_t offset() const { return pos_; }
  std::size_t remaining() const { return failed_ ? 0 : bytes_.size() - pos_; }
  bool atEnd() const { return remaining() == 0; }

  uint8_t u8() { return static_cast<uint8_t>(fixed(1)); }
  uint16_t u16() { return static_cast<uint16_t>(fixed(2)); }
  uint32_t u32() { return static_cast<uint32_t>(fixed(4)); }
  uint64_t u64() { return fixed(8); }
  // Unsigned integer of `size` bytes (1, 2, 4 or 8).
  uint64_t fixed(std::size_t size) {
    if (!take(size)) return 0;
    uint64_t value = 0;
    for (std::size_t i = 0; i < size; ++i) value |= uint64_t{bytes_[pos_ - size + i]} << (8 * i);
    return value;
  }

  uint64_t uleb() {
    uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (!take(1)) return 0;
      const uint8_t byte = bytes_[pos_ - 1];
      if (shift < 64) value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return value;
    }
  }

  int64_t sleb() {
    uint64_t value = 0;
    unsigned shift = 0;
    uint8_t byte = 0;
    do {
      if (!take(1)) return 0;
      byte = bytes_[pos_ - 1];
      if (shift < 64) value |= uint64_t{byte & 0x7fu} << shift;
      shift += 7;
    } while ((byte & 0x80) != 0);
    if (shift < 64 && (byte & 0x40) != 0) value |= ~uint64_t{0} << shift;
    return static_cast<int64_t>(value);
  }

  // A NUL-terminated string; the view points into the section.
  std::string_view cstring() {
    if (failed_) return {};
    const auto* start = bytes_.data() + pos_;
    const void* nul = std::memchr(start, 0, bytes_.size() - pos_);
    if (nul == nullptr) {
      fail();
      return {};
    }
    const std::size_t length = static_cast<std::size_t>(static_cast<const uint8_t*>(nul) - start);
    pos_ += length + 1;
    return {reinterpret_cast<const char*>(start), length};
  }

  void skip(uint64_t size) {
    if (size > remaining()) {
      fail();
      return;
    }
    pos_ += static_cast<std::size_t>(size);
  }

  // A reader over the next `size` bytes; this one moves past them.
  ByteReader sub(uint64_t size) {
    ByteReader inner;
    if (size > remaining()) {
      fail();
      inner.failed_ = true;
      return inner;
    }
    inner.bytes_ = bytes_.subspan(pos_, static_cast<std::size_t>(size));
    pos_ += static_cast<std::size_t>(size);
    return inner;
  }

 private:
  bool take(std::size_t size) {
    if (failed_ || size > bytes_.size() - pos_) {
      fail();
      return false;
    }
    pos_ += size;
    return true;
  }
  void fail() {
    failed_ = true;
    pos_ = bytes_.size();
  }
  std::span<const uint8_t> bytes_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

// Reads a string from a string section (.debug_str, .debug_line_str) at `offset`, "" if out of range.
inline std::string_view stringAt(std::span<const uint8_t> section, uint64_t offset) {
  if (offset >= section.size()) return {};
  ByteReader r(section, static_cast<std::size_t>(offset));
  return r.cstring();
}

}  // namespace heaptrail::symbols
