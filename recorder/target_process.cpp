#include "recorder/target_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

int openPidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::filesystem::path resolveCommand(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* pathEnv = std::getenv("PATH");
  std::istringstream dirs(pathEnv ? pathEnv : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw RecordError("command not found: " + name);
}

}  // namespace

std::vector<std::string> readCommandLine(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

TargetProcess TargetProcess::attach(pid_t pid) {
  TargetProcess target;
  target.pid_ = pid;
  target.pidfd_ = openPidfd(pid);
  if (target.pidfd_ < 0) {
    if (errno == ESRCH) throw RecordError("no such process: " + std::to_string(pid));
    throw RecordError("cannot watch process " + std::to_string(pid) + ": " + std::strerror(errno));
  }
  std::error_code ec;
  target.executable_ = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec) throw RecordError("cannot inspect process " + std::to_string(pid) + ": " + ec.message());
  target.commandLine_ = readCommandLine(pid);
  return target;
}

TargetProcess TargetProcess::launch(const std::vector<std::string>& argv) {
  TargetProcess target;
  target.launched_ = true;
  target.commandLine_ = argv;
  target.executable_ = resolveCommand(argv.at(0));
  if (::access(target.executable_.c_str(), X_OK) != 0)
    throw RecordError("cannot run " + target.executable_.string() + ": " + std::strerror(errno));

  int release[2], execError[2];
  if (::pipe2(release, O_CLOEXEC) != 0 || ::pipe2(execError, O_CLOEXEC) != 0)
    throw RecordError(std::string("pipe: ") + std::strerror(errno));

  // Everything the child needs is prepared before fork: it only reads, execs, exits.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string exe = target.executable_.string();

  const pid_t pid = ::fork();
  if (pid < 0) throw RecordError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(release[1]);
    ::close(execError[0]);
    // The recorder blocks these for its own signalfd; the command gets defaults.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    char go = 0;
    ssize_t n;
    do n = ::read(release[0], &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(127);  // the recorder gave up before releasing us
    ::execv(exe.c_str(), args.data());
    const int err = errno;
    (void)!::write(execError[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(release[0]);
  ::close(execError[1]);
  target.pid_ = pid;
  target.releaseFd_ = release[1];
  target.execErrorFd_ = execError[0];
  target.pidfd_ = openPidfd(pid);
  if (target.pidfd_ < 0) throw RecordError(std::string("pidfd_open: ") + std::strerror(errno));
  return target;
}

TargetProcess::TargetProcess(TargetProcess&& other) noexcept
    : pid_(other.pid_),
      launched_(other.launched_),
      reaped_(other.reaped_),
      status_(other.status_),
      executable_(std::move(other.executable_)),
      commandLine_(std::move(other.commandLine_)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      releaseFd_(std::exchange(other.releaseFd_, -1)),
      execErrorFd_(std::exchange(other.execErrorFd_, -1)) {
  other.pid_ = -1;
  other.launched_ = false;
}

TargetProcess::~TargetProcess() {
  if (launched_ && releaseFd_ >= 0) {
    // Never released (recording failed to start): closing the pipe makes the child exit.
    ::close(releaseFd_);
    releaseFd_ = -1;
    if (!reaped_) ::waitpid(pid_, nullptr, 0);
  }
  if (execErrorFd_ >= 0) ::close(execErrorFd_);
  if (pidfd_ >= 0) ::close(pidfd_);
}

void TargetProcess::release() {
  if (!launched_ || releaseFd_ < 0) return;
  const char go = 1;
  (void)!::write(releaseFd_, &go, 1);
  ::close(releaseFd_);
  releaseFd_ = -1;
  int err = 0;
  ssize_t n;
  do n = ::read(execErrorFd_, &err, sizeof err);
  while (n < 0 && errno == EINTR);
  ::close(execErrorFd_);
  execErrorFd_ = -1;
  if (n == sizeof err) {
    ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
    throw RecordError("cannot run " + executable_.string() + ": " + std::strerror(err));
  }
}

bool TargetProcess::exited() {
  pollfd p{pidfd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

std::optional<ExitStatus> TargetProcess::pollExit() {
  if (!launched_) return std::nullopt;
  if (reaped_) return status_;
  int wstatus = 0;
  const pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
  if (r != pid_) return std::nullopt;
  reaped_ = true;
  ExitStatus status;
  if (WIFSIGNALED(wstatus)) {
    status.signal = WTERMSIG(wstatus);
    status.coreDumped = WCOREDUMP(wstatus);
  } else {
    status.exitCode = WEXITSTATUS(wstatus);
  }
  status_ = status;
  return status_;
}

}  // namespace heaptrail::recorder
