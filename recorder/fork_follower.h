#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "recorder/target_process.h"

namespace heaptrail::recorder {

// --follow-forks without system-wide probes. The recorder traces the target with
// ptrace (PTRACE_SEIZE, with fork, vfork, clone and exec events): a process the tree
// starts is stopped by the kernel before its first instruction and stays stopped until
// the recorder has attached its probes (release()), so nothing it allocates is missed,
// and no process outside the tree ever hits a probe. An exec stops too, so that a new
// image's allocator is hooked before it runs. Exits are reported by the kernel to the
// tracer one by one: the recording knows exactly when the last process is gone.
//
// What the traced tree notices: a signal it receives takes a detour through the
// recorder (which passes it on at once), it cannot be traced by another debugger while
// recorded, and, for a command the recorder started, it is killed if the recorder dies.
class ForkFollower {
 public:
  // Traces every thread of process `pid`. `killWithRecorder`: PTRACE_O_EXITKILL.
  // Throws RecordError (e.g. the process is already traced).
  ForkFollower(pid_t pid, bool killWithRecorder);
  ~ForkFollower();  // lets every process go on untraced
  ForkFollower(const ForkFollower&) = delete;
  ForkFollower& operator=(const ForkFollower&) = delete;

  // Becomes readable when a traced thread changes state (a SIGCHLD signalfd).
  int fd() const { return signalFd_; }

  struct Event {
    enum class Kind { Fork, Exec, Exit } kind;
    pid_t pid = 0;
    pid_t parent = 0;                  // Fork
    std::optional<ExitStatus> status;  // Exit, when the kernel reported it
  };
  // Handles every state change so far without blocking: passes signals on, resumes
  // threads, and returns what happened to processes. After a Fork or an Exec event the
  // process stays stopped until release(pid).
  std::vector<Event> poll();
  void release(pid_t pid);

  // Processes of the tree still alive.
  size_t processCount() const { return processes_.size(); }
  bool follows(pid_t pid) const { return processes_.count(pid) > 0; }

 private:
  struct Thread {
    pid_t tgid = 0;
    bool stopped = false;  // in a stop that release() ends
  };
  struct Process {
    bool held = false;       // waiting for release()
    bool stopSeen = false;   // its first stop arrived (a new process)
    uint64_t startTime = 0;  // /proc/PID/stat starttime: tells a reused pid apart
  };
  void seizeAll(pid_t pid);
  void onStop(pid_t tid, int status, std::vector<Event>& events);
  void onExit(pid_t tid, int status, std::vector<Event>& events);
  void addProcess(pid_t pid, bool held);
  void sweepVanished(std::vector<Event>& events);
  void resume(pid_t tid, int signal = 0);

  unsigned long options_ = 0;
  int signalFd_ = -1;
  std::map<pid_t, Thread> threads_;
  std::map<pid_t, Process> processes_;
  std::set<pid_t> releasedEarly_;  // released before their first stop was seen
  uint64_t lastSweepNs_ = 0;
};

}  // namespace heaptrail::recorder
