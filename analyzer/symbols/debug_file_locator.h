// Where separate debug files (and full copies of binaries) may live; pure path logic plus CRC.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

namespace heaptrail::symbols {

class DebugFileLocator {
 public:
  // `dirs` in search order (user --debug-dir entries first, then system ones).
  explicit DebugFileLocator(std::vector<std::filesystem::path> dirs) : dirs_(std::move(dirs)) {}

  // <dir>/.build-id/xx/rest.debug and <dir>/xx/rest.debug for every dir.
  std::vector<std::filesystem::path> debugFilesByBuildId(std::string_view rawBuildId) const;
  // <dir>/.build-id/xx/rest: the distro convention for the binary itself.
  std::vector<std::filesystem::path> binariesByBuildId(std::string_view rawBuildId) const;
  // `hostBinary` is the binary as found on this machine, `recordedPath` as seen on the device.
  // `linkName` comes from the file: only a plain file name is used (one with a '/' leads
  // elsewhere and gives no candidate), and a recorded directory with ".." is not looked
  // for under the debug dirs.
  std::vector<std::filesystem::path> debugFilesByDebugLink(const std::filesystem::path& hostBinary,
                                                           const std::filesystem::path& recordedPath,
                                                           std::string_view linkName) const;

  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }

 private:
  std::vector<std::filesystem::path> dirs_;
};

// CRC-32 of a whole file as .gnu_debuglink records it (zlib's crc32), nullopt if unreadable.
std::optional<uint32_t> fileCrc32(const std::filesystem::path& path);
// The same for the open file `fd`, read from its start.
std::optional<uint32_t> fileCrc32(int fd);

}  // namespace heaptrail::symbols
