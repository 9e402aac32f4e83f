// Opening the files a traced process maps, without letting it steer the recorder: the
// target may be unprivileged and hostile, the recorder runs as root. A process can map
// a library and then put a FIFO (which would block open() forever) or a symbolic link
// to any file of root's in its place; what is opened here is always the file that was
// mapped, or nothing.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/unique_fd.h"

namespace heaptrail::recorder {

// A file mapping as the kernel reported it. Of device, inode and buildId, whatever is
// known is checked when the file has to be found by its path.
struct MappedFile {
  pid_t pid = 0;
  uint64_t start = 0;
  uint64_t end = 0;
  std::string path;     // as the process sees it (from its root)
  uint64_t device = 0;  // dev_t (makedev(major, minor)); 0: unknown
  uint64_t inode = 0;   // 0: unknown
  std::string buildId;  // raw bytes; empty: unknown
};

// Through /proc/PID/map_files/START-END (the mapped file itself, whatever its path has
// become; needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), else by its path beneath
// /proc/PID/root following no link at all (the recorder's root once the process is
// gone), accepted only when it is still the mapped file. Never blocks on a FIFO; regular files only. Invalid when none fits.
common::UniqueFd openMappedFile(const MappedFile& mapping);

// The executable `pid` runs, through /proc/PID/exe (the file itself, never its path).
common::UniqueFd openExecutableOf(pid_t pid);

// "/proc/self/fd/N": names the open file `fd` for APIs that take a path (uprobes),
// without a second lookup of a path someone else controls.
std::string pathOfFd(int fd);

}  // namespace heaptrail::recorder
