#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "recorder/unwind/unwind_table.h"

namespace heaptrail::recorder::unwind {

// Unwind tables compiled so far, one per file: by build-id (two processes with the same
// libc, or the same library mapped twice, share one table), by device and inode for
// files without one.
class TableCache {
 public:
  // The table of the ELF file open at `fd`, compiled on first use.
  std::shared_ptr<const UnwindTable> get(int fd);
  // The table compiled for a file with this build-id, nullptr when there is none yet.
  std::shared_ptr<const UnwindTable> find(const std::string& buildId) const;

  size_t tables() const { return byBuildId_.size() + byInode_.size(); }
  // Bytes of rows in all tables.
  uint64_t bytes() const { return bytes_; }

 private:
  std::map<std::string, std::shared_ptr<const UnwindTable>> byBuildId_;
  std::map<std::pair<dev_t, ino_t>, std::shared_ptr<const UnwindTable>> byInode_;
  uint64_t bytes_ = 0;
};

}  // namespace heaptrail::recorder::unwind
