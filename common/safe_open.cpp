#include "common/safe_open.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace heaptrail::common {
namespace {

constexpr int kReadFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

// Keeps `fd` only when it is a regular file.
UniqueFd regularOnly(UniqueFd fd) {
  if (!fd) return fd;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return {};
  if (!S_ISREG(st.st_mode)) {
    errno = EINVAL;
    return {};
  }
  return fd;
}

}  // namespace

UniqueFd openRegularInRoot(int rootFd, const std::string& path, Links links) {
  open_how how{};
  how.flags = kReadFlags;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  if (links == Links::Refuse) how.resolve |= RESOLVE_NO_SYMLINKS;
  const std::string relative = path.empty() ? "." : path;
  long fd = -1;
  // EAGAIN: a rename raced with the lookup; someone renaming on purpose gets no more tries.
  for (int attempt = 0; attempt < 8; ++attempt) {
    fd = ::syscall(SYS_openat2, rootFd, relative.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return regularOnly(UniqueFd(static_cast<int>(fd)));
}

UniqueFd openRegular(const std::filesystem::path& path) {
  return regularOnly(UniqueFd(::open(path.c_str(), kReadFlags)));
}

std::string openErrorText(int err) {
  if (err == EINVAL) return "not a regular file";
  if (err == ELOOP) return "a symbolic link leads there";
  if (err == EXDEV) return "it leads outside its root";
  return std::strerror(err);
}

}  // namespace heaptrail::common
