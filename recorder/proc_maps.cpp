#include "recorder/proc_maps.h"

#include <sys/sysmacros.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace heaptrail::recorder {

std::vector<MapsEntry> parseMaps(const std::string& text) {
  std::vector<MapsEntry> entries;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    MapsEntry e;
    char perms[5] = {};
    unsigned devMajor = 0, devMinor = 0;
    int pathStart = 0;
    if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
                    &e.start, &e.end, perms, &e.offset, &devMajor, &devMinor, &e.inode,
                    &pathStart) < 7)
      continue;
    e.device = makedev(devMajor, devMinor);
    e.readable = perms[0] == 'r';
    e.writable = perms[1] == 'w';
    e.executable = perms[2] == 'x';
    if (pathStart > 0 && static_cast<size_t>(pathStart) <= line.size())
      e.path = line.substr(static_cast<size_t>(pathStart));
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<MapsEntry> readMaps(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/maps";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parseMaps(text.str());
}

}  // namespace heaptrail::recorder
