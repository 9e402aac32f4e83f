#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "recorder/user_identity.h"

namespace heaptrail::recorder {

struct ExitStatus {
  int exitCode = 0;  // valid when signal == 0
  int signal = 0;
  bool coreDumped = false;
};

// argv of a process from /proc/PID/cmdline; empty when it cannot be read.
std::vector<std::string> readCommandLine(pid_t pid);

// How a command is started.
struct LaunchOptions {
  std::optional<UserIdentity> user;  // --user: run it as this user
  bool stdoutToStderr = false;       // the trace goes to standard output: keep the command off it
};

// The process being recorded: either started by the recorder (held just before exec
// until release(), so nothing of it is missed) or a running process attached by pid.
// Owns a pidfd that becomes readable when the process exits.
//
// A started command lives no longer than its recorder: the kernel kills it when the
// recorder dies (PR_SET_PDEATHSIG), and a recording that ends before it terminates it
// (terminate(), also on destruction).
class TargetProcess {
 public:
  // Throws RecordError for a process that is gone, a zombie or a kernel thread.
  static TargetProcess attach(pid_t pid);
  // Resolves argv[0] through PATH, checks that it can run (command_check.h), forks,
  // and holds the child before exec.
  static TargetProcess launch(const std::vector<std::string>& argv, const LaunchOptions& options = {});

  TargetProcess(TargetProcess&& other) noexcept;
  TargetProcess& operator=(TargetProcess&&) = delete;
  ~TargetProcess();

  pid_t pid() const { return pid_; }
  bool launched() const { return launched_; }
  const std::filesystem::path& executable() const { return executable_; }
  // Launched: the ELF program the kernel loads for it (a script's interpreter).
  const std::filesystem::path& program() const { return program_; }
  const std::vector<std::string>& commandLine() const { return commandLine_; }
  // Launched: the LD_PRELOAD of the environment the command gets (empty if none).
  const std::string& ldPreload() const { return ldPreload_; }
  int pidfd() const { return pidfd_; }

  // Lets a launched child exec its command; throws RecordError if the exec failed.
  void release();
  // Non-blocking: the exit status once a launched child has exited (and been reaped).
  // Attached processes are not our children: their status is never known.
  std::optional<ExitStatus> pollExit();
  bool exited();

  // Sends `sig` to a launched command that is still running (never to a process the
  // recorder did not start); false if there is none.
  bool signal(int sig);
  // Ends a launched command that is still running: SIGTERM, and SIGKILL if it is still
  // there after `graceNs`; reaps it. Returns true if it had to be signalled.
  bool terminate(uint64_t graceNs = kTerminateGraceNs);
  static constexpr uint64_t kTerminateGraceNs = 2'000'000'000;

 private:
  TargetProcess() = default;
  void noteExit(int wstatus);

  pid_t pid_ = -1;
  bool launched_ = false;
  bool reaped_ = false;
  std::optional<ExitStatus> status_;
  std::filesystem::path executable_;
  std::vector<std::string> commandLine_;
  int pidfd_ = -1;
  int releaseFd_ = -1;   // launched: write end of the pipe the child waits on
  int execErrorFd_ = -1; // launched: read end; gets errno if exec fails, EOF if it worked
  std::filesystem::path program_;
  std::string user_;     // --user, for messages
  std::string ldPreload_;
};

}  // namespace heaptrail::recorder
