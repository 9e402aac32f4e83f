// Opening files whose names come from someone else (a traced process, a trace from a
// stranger) without letting the name steer us: no blocking on a FIFO or device, no
// following of links out of a directory tree, regular files only.
#pragma once

#include <filesystem>
#include <string>

#include "common/unique_fd.h"

namespace heaptrail::common {

enum class Links {
  Refuse,      // any symbolic link in the path is an error
  StayInside,  // links are followed, but resolved as if `root` were "/"
};

// Opens `path` for reading beneath the directory `rootFd` as if it were "/": "..",
// absolute paths and (with Links::StayInside) absolute symbolic links never lead
// outside it (openat2 with RESOLVE_IN_ROOT, Linux 5.6+). /proc magic links are never
// followed. Only a regular file is returned; a FIFO or device is never waited on.
// Returns an invalid fd with errno set on failure (EINVAL: not a regular file).
UniqueFd openRegularInRoot(int rootFd, const std::string& path, Links links);

// Opens a path the user named (links followed as usual) for reading, without blocking
// on a FIFO or device; only a regular file is returned (errno EINVAL otherwise).
UniqueFd openRegular(const std::filesystem::path& path);

// What a failed open above means for a user ("not a regular file" for EINVAL).
std::string openErrorText(int err);

}  // namespace heaptrail::common
