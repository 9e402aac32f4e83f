#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace heaptrail::recorder {

struct ExitStatus {
  int exitCode = 0;  // valid when signal == 0
  int signal = 0;
  bool coreDumped = false;
};

// argv of a process from /proc/PID/cmdline; empty when it cannot be read.
std::vector<std::string> readCommandLine(pid_t pid);

// The process being recorded: either started by the recorder (held just before exec
// until release(), so nothing of it is missed) or a running process attached by pid.
// Owns a pidfd that becomes readable when the process exits.
class TargetProcess {
 public:
  static TargetProcess attach(pid_t pid);
  // Resolves argv[0] through PATH, forks, and holds the child before exec.
  static TargetProcess launch(const std::vector<std::string>& argv);

  TargetProcess(TargetProcess&& other) noexcept;
  TargetProcess& operator=(TargetProcess&&) = delete;
  ~TargetProcess();

  pid_t pid() const { return pid_; }
  bool launched() const { return launched_; }
  const std::filesystem::path& executable() const { return executable_; }
  const std::vector<std::string>& commandLine() const { return commandLine_; }
  int pidfd() const { return pidfd_; }

  // Lets a launched child exec its command; throws RecordError if the exec failed.
  void release();
  // Non-blocking: the exit status once a launched child has exited (and been reaped).
  // Attached processes are not our children: their status is never known.
  std::optional<ExitStatus> pollExit();
  bool exited();

 private:
  TargetProcess() = default;

  pid_t pid_ = -1;
  bool launched_ = false;
  bool reaped_ = false;
  std::optional<ExitStatus> status_;
  std::filesystem::path executable_;
  std::vector<std::string> commandLine_;
  int pidfd_ = -1;
  int releaseFd_ = -1;   // launched: write end of the pipe the child waits on
  int execErrorFd_ = -1; // launched: read end; gets errno if exec fails, EOF if it worked
};

}  // namespace heaptrail::recorder
