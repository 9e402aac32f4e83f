#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace heaptrail::recorder {

// One line of /proc/PID/maps.
struct MapsEntry {
  uint64_t start = 0;
  uint64_t end = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;
  uint64_t offset = 0;
  uint64_t device = 0;  // dev_t of the mapped file
  uint64_t inode = 0;
  std::string path;  // empty for anonymous memory
};

// Parses the text of a maps file; malformed lines are skipped.
std::vector<MapsEntry> parseMaps(const std::string& text);
// Reads /proc/PID/maps; throws std::runtime_error when the process is gone or hidden.
std::vector<MapsEntry> readMaps(pid_t pid);

}  // namespace heaptrail::recorder
