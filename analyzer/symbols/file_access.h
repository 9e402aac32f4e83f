// How the symbolizer opens the files a trace names (mapping paths, build-id and
// .gnu_debuglink candidates). A trace comes from a stranger: with --sysroot, every path
// spelled under the sysroot is resolved beneath it, so ".." in a recorded path
// ("/../../../srv/x/lib.so") and absolute symbolic links inside the sysroot
// ("usr/lib/libfoo.so -> /etc/...") stay inside it (openat2 RESOLVE_IN_ROOT). Nothing is
// waited on (a FIFO where a library should be) and only regular files are opened.
#pragma once

#include <filesystem>
#include <string>

#include "common/unique_fd.h"

namespace heaptrail::symbols {

class FileAccess {
 public:
  // `sysroot` empty: recorded paths are this machine's paths.
  explicit FileAccess(const std::filesystem::path& sysroot = {});

  const std::string& sysroot() const { return sysroot_; }
  // Where a path recorded on the device is looked for here: spelled under the sysroot
  // (".." kept: open() resolves it beneath the sysroot), or the path itself.
  std::filesystem::path hostPath(const std::filesystem::path& recorded) const;
  // Opens `path` for reading; invalid with errno set when it is missing, not a regular
  // file (EINVAL) or, under the sysroot, leads out of it.
  common::UniqueFd open(const std::filesystem::path& path) const;

 private:
  std::string sysroot_;  // absolute, normalized, no trailing slash; empty: none
  common::UniqueFd root_;
};

}  // namespace heaptrail::symbols
