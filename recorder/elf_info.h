#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace heaptrail::recorder {

// What the recorder needs to know about an ELF file: enough to find the allocator and
// to identify the file later. Deliberately small: no symbolization on the device.
struct ElfInfo {
  std::string buildId;               // GNU build-id bytes, empty if none
  std::string interpreter;           // PT_INTERP, empty for static executables
  std::vector<std::string> needed;   // DT_NEEDED
  bool definesMalloc = false;        // exports or defines a `malloc` function
};

// nullopt when the file cannot be opened or is not ELF.
std::optional<ElfInfo> readElfInfo(const std::filesystem::path& path);
// Just the build-id ("" when none or unreadable).
std::string readElfBuildId(const std::filesystem::path& path);

}  // namespace heaptrail::recorder
