#include "common/safe_text.h"

#include <cstdint>
#include <cstdio>

namespace heaptrail::common {
namespace {

// Length of the valid UTF-8 sequence at text[i] (2 to 4), 0 if invalid: overlong forms,
// surrogates and code points above U+10FFFF are invalid.
size_t utf8SequenceLength(std::string_view text, size_t i, uint32_t& codePoint) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  if (c >= 0xC2 && c <= 0xDF) n = 2, codePoint = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, codePoint = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, codePoint = c & 0x07;
  else return 0;
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    codePoint = (codePoint << 6) | (byte(i + k) & 0x3F);
  }
  if ((n == 3 && (codePoint < 0x800 || (codePoint >= 0xD800 && codePoint <= 0xDFFF))) ||
      (n == 4 && (codePoint < 0x10000 || codePoint > 0x10FFFF)))
    return 0;
  return n;
}

void appendByteEscape(std::string& out, unsigned value) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", value);
  out += buf;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      uint32_t codePoint = 0;
      const size_t n = utf8SequenceLength(text, i, codePoint);
      if (n == 0) {
        appendByteEscape(out, c);
        ++i;
      } else if (codePoint >= 0x80 && codePoint <= 0x9F) {  // C1 controls (CSI is U+009B)
        appendByteEscape(out, codePoint);
        i += n;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case 0x1b: out += "\\e"; break;
      default:
        if (c < 0x20 || c == 0x7f)
          appendByteEscape(out, c);
        else
          out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  return out;
}

}  // namespace heaptrail::common
