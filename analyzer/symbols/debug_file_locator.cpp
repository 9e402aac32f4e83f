#include "analyzer/symbols/debug_file_locator.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>

#include "common/hex.h"

namespace heaptrail::symbols {

namespace {

bool splitBuildId(std::string_view raw, std::string& head, std::string& rest) {
  if (raw.size() < 2) return false;
  std::string hex = common::hexBytes(raw);
  head = hex.substr(0, 2);
  rest = hex.substr(2);
  return true;
}

// Joins an absolute device path under `dir` (path / "/x" would discard `dir`).
std::filesystem::path under(const std::filesystem::path& dir, const std::filesystem::path& p) {
  return dir / p.relative_path();
}

}  // namespace

std::vector<std::filesystem::path> DebugFileLocator::debugFilesByBuildId(std::string_view rawBuildId) const {
  std::vector<std::filesystem::path> out;
  std::string head, rest;
  if (!splitBuildId(rawBuildId, head, rest)) return out;
  for (const auto& dir : dirs_) {
    out.push_back(dir / ".build-id" / head / (rest + ".debug"));
    out.push_back(dir / head / (rest + ".debug"));
  }
  return out;
}

std::vector<std::filesystem::path> DebugFileLocator::binariesByBuildId(std::string_view rawBuildId) const {
  std::vector<std::filesystem::path> out;
  std::string head, rest;
  if (!splitBuildId(rawBuildId, head, rest)) return out;
  for (const auto& dir : dirs_) out.push_back(dir / ".build-id" / head / rest);
  return out;
}

std::vector<std::filesystem::path> DebugFileLocator::debugFilesByDebugLink(const std::filesystem::path& hostBinary,
                                                                           const std::filesystem::path& recordedPath,
                                                                           std::string_view linkName) const {
  std::vector<std::filesystem::path> out;
  if (linkName.empty() || linkName.find('/') != std::string_view::npos || linkName == "." || linkName == "..")
    return out;
  const std::filesystem::path name(linkName);
  const std::filesystem::path hostDir = hostBinary.parent_path();
  out.push_back(hostDir / name);
  out.push_back(hostDir / ".debug" / name);
  const std::filesystem::path recordedDir = recordedPath.parent_path();
  const bool climbs = std::any_of(recordedDir.begin(), recordedDir.end(), [](const auto& part) { return part == ".."; });
  for (const auto& dir : dirs_) {
    if (!recordedDir.empty() && !climbs) out.push_back(under(dir, recordedDir) / name);
    out.push_back(dir / name);
  }
  return out;
}

std::optional<uint32_t> fileCrc32(int fd) {
  std::array<char, 1 << 16> buffer;
  uLong crc = crc32(0L, Z_NULL, 0);
  off_t offset = 0;
  while (true) {
    const ssize_t got = ::pread(fd, buffer.data(), buffer.size(), offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return std::nullopt;
    if (got == 0) break;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(got));
    offset += got;
  }
  return static_cast<uint32_t>(crc);
}

std::optional<uint32_t> fileCrc32(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::array<char, 1 << 16> buffer;
  uLong crc = crc32(0L, Z_NULL, 0);
  while (in) {
    in.read(buffer.data(), buffer.size());
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(got));
  }
  if (in.bad()) return std::nullopt;
  return static_cast<uint32_t>(crc);
}

}  // namespace heaptrail::symbols
