#include "recorder/unwind/table_cache.h"

#include <sys/stat.h>

#include "common/build_id.h"

namespace heaptrail::recorder::unwind {

std::shared_ptr<const UnwindTable> TableCache::get(int fd) {
  const std::string buildId = common::readBuildId(fd);
  struct stat st {};
  if (buildId.empty() && ::fstat(fd, &st) != 0) return nullptr;
  if (!buildId.empty()) {
    if (auto it = byBuildId_.find(buildId); it != byBuildId_.end()) return it->second;
  } else if (auto it = byInode_.find({st.st_dev, st.st_ino}); it != byInode_.end()) {
    return it->second;
  }
  auto table = std::make_shared<const UnwindTable>(compileUnwindTable(fd));
  bytes_ += table->bytes();
  if (!buildId.empty())
    byBuildId_.emplace(buildId, table);
  else
    byInode_.emplace(std::pair{st.st_dev, st.st_ino}, table);
  return table;
}

std::shared_ptr<const UnwindTable> TableCache::find(const std::string& buildId) const {
  if (buildId.empty()) return nullptr;
  auto it = byBuildId_.find(buildId);
  return it == byBuildId_.end() ? nullptr : it->second;
}

}  // namespace heaptrail::recorder::unwind
