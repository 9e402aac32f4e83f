#include "recorder/output_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <utility>

#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

constexpr mode_t kTraceMode = 0600;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& why) {
  throw RecordError("cannot write " + path.string() + ": " + why);
}

// Locks `fd` for this recorder; a second recorder on the same file is refused.
void lockOrFail(int fd, const std::filesystem::path& path) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return;
  if (errno == EWOULDBLOCK) fail(path, "another heaptrail recorder is writing it");
  fail(path, std::string("cannot lock it: ") + std::strerror(errno));
}

bool sameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// True when `name` in `dir` is still the file open as `fd` (not replaced by someone).
bool stillOurs(int dir, const std::string& name, int fd) {
  struct stat there {}, ours {};
  return ::fstatat(dir, name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0 && ::fstat(fd, &ours) == 0 &&
         sameFile(there, ours);
}

const char* describeType(mode_t mode) {
  if (S_ISDIR(mode)) return "it is a directory";
  if (S_ISSOCK(mode)) return "it is a socket";
  if (S_ISBLK(mode)) return "it is a block device";
  return "it is not a regular file";
}

void setBlocking(int fd, bool blocking) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

}  // namespace

OutputFile OutputFile::open(const std::filesystem::path& path) {
  OutputFile out;
  out.path_ = path;
  if (path == "-" || path == "/dev/stdout") {
    out.kind_ = Kind::Stdout;
    if (::isatty(STDOUT_FILENO))
      throw RecordError("will not write a binary trace to a terminal: redirect standard output to a file or a pipe, "
                        "or name a file with -o");
    out.fd_.reset(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3));
    struct stat st {};
    if (!out.fd_ || ::fstat(out.fd_.get(), &st) != 0)
      throw RecordError(std::string("cannot write to standard output: ") + std::strerror(errno));
    // A pipe whose reader stalls must not block the recorder where Ctrl-C cannot reach it.
    if (S_ISFIFO(st.st_mode)) setBlocking(out.fd_.get(), false);
    return out;
  }

  out.name_ = path.filename().string();
  if (out.name_.empty() || out.name_ == "." || out.name_ == "..") fail(path, "it is a directory");
  const auto parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  out.dir_.reset(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!out.dir_) fail(path, std::strerror(errno));
  const int dir = out.dir_.get();

  for (int attempt = 0; attempt < 8; ++attempt) {
    // The usual case: nothing there yet.
    out.fd_.reset(::openat(dir, out.name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kTraceMode));
    if (out.fd_) {
      out.kind_ = Kind::NewFile;
      try {
        lockOrFail(out.fd_.get(), path);
      } catch (...) {
        // Another recorder opened it first; it is theirs now.
        out.done_ = true;
        throw;
      }
      return out;
    }
    if (errno != EEXIST) fail(path, std::strerror(errno));

    // Something is there: look at it without following a link, and without waiting
    // for a FIFO's reader.
    common::UniqueFd existing(::openat(dir, out.name_.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!existing) {
      const int err = errno;
      if (err == ENOENT) continue;  // removed meanwhile: try creating it again
      struct stat st {};
      const bool known = ::fstatat(dir, out.name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
      if (err == ELOOP || (known && S_ISLNK(st.st_mode)))
        fail(path, "it is a symbolic link (refusing to write through it; remove it or choose another name)");
      if (err == ENXIO && known && S_ISFIFO(st.st_mode))
        fail(path, "it is a FIFO with no reader (start the reader first)");
      if (known && !S_ISREG(st.st_mode)) fail(path, describeType(st.st_mode));
      fail(path, std::strerror(err));
    }
    struct stat st {};
    if (::fstat(existing.get(), &st) != 0) fail(path, std::strerror(errno));
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
      // Streamed as it is (a FIFO stays non-blocking; a device such as /dev/null never blocks).
      lockOrFail(existing.get(), path);
      if (S_ISCHR(st.st_mode)) setBlocking(existing.get(), true);
      out.kind_ = Kind::Stream;
      out.fd_ = std::move(existing);
      out.dir_.reset();
      return out;
    }
    if (!S_ISREG(st.st_mode)) fail(path, describeType(st.st_mode));

    // An existing file: keep it, locked, until the new trace takes its place.
    lockOrFail(existing.get(), path);
    out.existing_ = std::move(existing);
    out.kind_ = Kind::Replacement;
    for (int tries = 0; tries < 100 && !out.fd_; ++tries) {
      uint64_t random = 0;
      if (::getrandom(&random, sizeof random, 0) != sizeof random) random = static_cast<uint64_t>(::getpid()) * 7919 + tries;
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, ".%012" PRIx64, static_cast<uint64_t>(random & 0xffffffffffffull));
      out.tempName_ = "." + out.name_ + suffix;
      out.fd_.reset(::openat(dir, out.tempName_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                             kTraceMode));
      if (!out.fd_ && errno != EEXIST) fail(path, std::string("cannot create a file beside it: ") + std::strerror(errno));
    }
    if (!out.fd_) fail(path, "cannot create a file beside it");
    lockOrFail(out.fd_.get(), path);
    return out;
  }
  fail(path, "it keeps changing");
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : path_(std::move(other.path_)),
      kind_(other.kind_),
      fd_(std::move(other.fd_)),
      dir_(std::move(other.dir_)),
      existing_(std::move(other.existing_)),
      name_(std::move(other.name_)),
      tempName_(std::move(other.tempName_)),
      done_(std::exchange(other.done_, true)) {}

OutputFile::~OutputFile() {
  if (!done_) abandon();
}

common::UniqueFd OutputFile::writeFd() const {
  common::UniqueFd fd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 3));
  if (!fd) throw RecordError("cannot write " + path_.string() + ": " + std::strerror(errno));
  return fd;
}

void OutputFile::commit() {
  if (done_) return;
  if (kind_ == Kind::Replacement) {
    // rename() replaces whatever is at the name now (even a link planted meanwhile)
    // without following it.
    if (::renameat(dir_.get(), tempName_.c_str(), dir_.get(), name_.c_str()) != 0)
      fail(path_, std::string("cannot replace it: ") + std::strerror(errno));
  }
  done_ = true;
}

void OutputFile::abandon() {
  if (done_) return;
  done_ = true;
  if (kind_ == Kind::NewFile && stillOurs(dir_.get(), name_, fd_.get()))
    ::unlinkat(dir_.get(), name_.c_str(), 0);
  if (kind_ == Kind::Replacement && stillOurs(dir_.get(), tempName_, fd_.get()))
    ::unlinkat(dir_.get(), tempName_.c_str(), 0);
}

}  // namespace heaptrail::recorder
