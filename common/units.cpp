#include "common/units.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

namespace heaptrail::common {
namespace {

// Splits "1.5ms" into 1.5 and "ms"; nullopt if there is no leading non-negative number.
std::optional<std::pair<double, std::string>> splitNumber(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || end != text.data() + i || !std::isfinite(value)) return std::nullopt;
  std::string unit;
  for (char c : text.substr(i)) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return std::make_pair(value, unit);
}

std::optional<uint64_t> scaled(double value, double factor) {
  const double result = std::round(value * factor);
  if (result < 0 || result >= 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(result);
}

}  // namespace

std::optional<uint64_t> parseDuration(std::string_view text) {
  const auto parts = splitNumber(text);
  if (!parts) return std::nullopt;
  static constexpr std::array<std::pair<std::string_view, double>, 8> units = {{
      {"ns", 1},
      {"us", 1e3},
      {"ms", 1e6},
      {"", 1e9},
      {"s", 1e9},
      {"m", 60e9},
      {"min", 60e9},
      {"h", 3600e9},
  }};
  for (const auto& [unit, factor] : units)
    if (parts->second == unit) return scaled(parts->first, factor);
  return std::nullopt;
}

std::optional<uint64_t> parseSize(std::string_view text) {
  const auto parts = splitNumber(text);
  if (!parts) return std::nullopt;
  static constexpr std::array<std::pair<std::string_view, double>, 11> units = {{
      {"", 1},
      {"b", 1},
      {"k", 1024.0},
      {"kb", 1024.0},
      {"kib", 1024.0},
      {"m", 1048576.0},
      {"mb", 1048576.0},
      {"mib", 1048576.0},
      {"g", 1073741824.0},
      {"gb", 1073741824.0},
      {"gib", 1073741824.0},
  }};
  for (const auto& [unit, factor] : units)
    if (parts->second == unit) return scaled(parts->first, factor);
  return std::nullopt;
}

std::string formatDuration(uint64_t ns) {
  char buf[32];
  const double s = static_cast<double>(ns) / 1e9;
  if (ns < 1000000)
    std::snprintf(buf, sizeof buf, "%.1f us", static_cast<double>(ns) / 1e3);
  else if (ns < 1000000000)
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(ns) / 1e6);
  else if (s < 120)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 7200)
    std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else
    std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  return buf;
}

std::string formatBytes(uint64_t bytes) {
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    static constexpr std::array<const char*, 5> names = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double value = static_cast<double>(bytes) / 1024;
    size_t unit = 0;
    while (value >= 1024 && unit + 1 < names.size()) {
      value /= 1024;
      ++unit;
    }
    std::snprintf(buf, sizeof buf, "%.1f %s", value, names[unit]);
  }
  return buf;
}

}  // namespace heaptrail::common
