#include "recorder/target_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/safe_text.h"
#include "recorder/command_check.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

int openPidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::filesystem::path resolveCommand(const std::string& name, const char* searchPath) {
  if (name.find('/') != std::string::npos) return name;
  std::istringstream dirs(searchPath ? searchPath : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  throw RecordError("command not found: " + common::printable(name));
}

// What the held child reports through its error pipe when it cannot go on.
struct ChildFailure {
  enum Stage : int { Exec, BecomeUser } stage;
  int error;
};

// Why `pid` cannot be recorded, from /proc/PID/stat; empty if it can.
std::string unrecordable(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return {};
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream fields(stat.substr(close + 1));
  std::string state, skipped;
  unsigned long flags = 0;
  fields >> state;
  for (int i = 0; i < 5; ++i) fields >> skipped;  // ppid pgrp session tty_nr tpgid
  fields >> flags;
  constexpr unsigned long kKernelThread = 0x00200000;  // PF_KTHREAD
  if (flags & kKernelThread) return "it is a kernel thread (it has no user-space allocator to record)";
  if (state == "Z" || state == "X") {
    // A main thread that called pthread_exit() looks the same while other threads run.
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.starts_with("Threads:") && std::stoul(line.substr(8)) > 1)
        return "its main thread has exited (other threads still run), which heaptrail cannot attach to";
    return "it has exited (a zombie waiting for its parent to reap it): there is nothing left to record";
  }
  return {};
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
  if (const auto why = unrecordable(pid); !why.empty())
    throw RecordError("cannot record process " + std::to_string(pid) + ": " + why);
  std::error_code ec;
  target.executable_ = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec) {
    if (target.exited()) throw RecordError("process " + std::to_string(pid) + " exited before it could be recorded");
    throw RecordError("cannot inspect process " + std::to_string(pid) + ": " + ec.message());
  }
  target.commandLine_ = readCommandLine(pid);
  return target;
}

TargetProcess TargetProcess::launch(const std::vector<std::string>& argv, const LaunchOptions& options) {
  TargetProcess target;
  target.launched_ = true;
  target.commandLine_ = argv;
  target.executable_ = resolveCommand(argv.at(0), options.user ? kUserPath : std::getenv("PATH"));
  target.program_ = programToRun(target.executable_);
  target.user_ = options.user ? options.user->name : "";

  int release[2], execError[2];
  if (::pipe2(release, O_CLOEXEC) != 0 || ::pipe2(execError, O_CLOEXEC) != 0)
    throw RecordError(std::string("pipe: ") + std::strerror(errno));

  // Everything the child needs is prepared before fork: between fork and exec it only
  // makes system calls (the recorder has a second thread: stop_signals.h).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string exe = target.executable_.string();
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e) environment.emplace_back(*e);
  if (options.user) environment = environmentFor(*options.user, environment);
  for (const auto& e : environment)
    if (e.starts_with("LD_PRELOAD=")) target.ldPreload_ = e.substr(11);
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t recorder = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) throw RecordError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(release[1]);
    ::close(execError[0]);
    const auto failed = [&](ChildFailure::Stage stage) {
      const ChildFailure failure{stage, errno};
      (void)!::write(execError[1], &failure, sizeof failure);
      ::_exit(127);
    };
    // The recorder blocks these for its own signalfd; the command gets defaults.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.stdoutToStderr) ::dup2(STDERR_FILENO, STDOUT_FILENO);
    if (options.user && !becomeUser(*options.user)) failed(ChildFailure::BecomeUser);
    // After the credentials changed (which clears it): die with the recorder, even
    // when it is killed with SIGKILL.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != recorder) ::_exit(127);
    char go = 0;
    ssize_t n;
    do n = ::read(release[0], &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(127);  // the recorder gave up before releasing us
    ::execve(exe.c_str(), args.data(), envp.data());
    failed(ChildFailure::Exec);
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
      execErrorFd_(std::exchange(other.execErrorFd_, -1)),
      program_(std::move(other.program_)),
      user_(std::move(other.user_)),
      ldPreload_(std::move(other.ldPreload_)) {
  other.pid_ = -1;
  other.launched_ = false;
}

TargetProcess::~TargetProcess() {
  if (launched_ && releaseFd_ >= 0) {
    // Never released (recording failed to start): closing the pipe makes the child exit.
    ::close(releaseFd_);
    releaseFd_ = -1;
    if (!reaped_) ::waitpid(pid_, nullptr, 0);
  } else if (launched_ && !reaped_) {
    terminate();  // the recording is over: the command does not outlive it
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
  ChildFailure failure{};
  ssize_t n;
  do n = ::read(execErrorFd_, &failure, sizeof failure);
  while (n < 0 && errno == EINTR);
  ::close(execErrorFd_);
  execErrorFd_ = -1;
  if (n == sizeof failure) {
    ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
    const std::string command = common::printable(executable_.string());
    if (failure.stage == ChildFailure::BecomeUser)
      throw RecordError("cannot run " + command + " as user " + common::printable(user_) + ": " +
                        std::strerror(failure.error));
    throw RecordError("cannot run " + command + (user_.empty() ? "" : " as user " + common::printable(user_)) +
                      ": " + std::strerror(failure.error));
  }
}

bool TargetProcess::exited() {
  pollfd p{pidfd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

bool TargetProcess::signal(int sig) {
  if (!launched_ || reaped_ || pidfd_ < 0) return false;
  return ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0) == 0;
}

bool TargetProcess::terminate(uint64_t graceNs) {
  if (!launched_ || reaped_ || releaseFd_ >= 0 || exited()) return false;
  signal(SIGTERM);
  pollfd p{pidfd_, POLLIN, 0};
  int n;
  do n = ::poll(&p, 1, static_cast<int>(graceNs / 1'000'000));
  while (n < 0 && errno == EINTR);
  if (n <= 0) signal(SIGKILL);
  int wstatus = 0;
  if (::waitpid(pid_, &wstatus, 0) == pid_) noteExit(wstatus);
  return true;
}

std::optional<ExitStatus> TargetProcess::pollExit() {
  if (!launched_) return std::nullopt;
  if (reaped_) return status_;
  int wstatus = 0;
  const pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
  if (r != pid_) return std::nullopt;
  noteExit(wstatus);
  return status_;
}

void TargetProcess::noteExit(int wstatus) {
  reaped_ = true;
  ExitStatus status;
  if (WIFSIGNALED(wstatus)) {
    status.signal = WTERMSIG(wstatus);
    status.coreDumped = WCOREDUMP(wstatus);
  } else {
    status.exitCode = WEXITSTATUS(wstatus);
  }
  status_ = status;
}

}  // namespace heaptrail::recorder
