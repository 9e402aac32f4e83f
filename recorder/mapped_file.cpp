#include "recorder/mapped_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>

#include "common/build_id.h"
#include "common/safe_open.h"

namespace heaptrail::recorder {
namespace {

bool isMappedFile(int fd, const MappedFile& m) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  if (m.inode != 0 && st.st_ino != m.inode) return false;
  if (m.device != 0 && st.st_dev != m.device) return false;
  if (!m.buildId.empty() && common::readBuildId(fd) != m.buildId) return false;
  return m.inode != 0 || !m.buildId.empty();  // nothing to compare with: not trusted
}

}  // namespace

common::UniqueFd openMappedFile(const MappedFile& m) {
  char mapFile[96];
  std::snprintf(mapFile, sizeof mapFile, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, m.pid, m.start, m.end);
  if (auto fd = common::openRegular(mapFile)) return fd;

  if (m.path.empty() || m.path.front() != '/') return {};
  common::UniqueFd root(::open(("/proc/" + std::to_string(m.pid) + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  // A process that is gone already (a short command whose records are read after its
  // exit): the path in the recorder's own root, accepted on the same checks (inode and
  // build-id), so a file of another mount namespace is never taken for it.
  if (!root && errno == ENOENT) root = common::UniqueFd(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return {};
  auto fd = common::openRegularInRoot(root.get(), m.path, common::Links::Refuse);
  if (!fd || !isMappedFile(fd.get(), m)) return {};
  return fd;
}

common::UniqueFd openExecutableOf(pid_t pid) {
  return common::openRegular("/proc/" + std::to_string(pid) + "/exe");
}

std::string pathOfFd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace heaptrail::recorder
