#include "recorder/fork_follower.h"

#include <dirent.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

constexpr uint64_t kSweepIntervalNs = 1'000'000'000;

uint64_t nowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// A field of /proc/TID/status ("Tgid", "PPid"); 0 when unreadable.
pid_t statusField(pid_t tid, const char* name) {
  std::ifstream in("/proc/" + std::to_string(tid) + "/status");
  std::string line;
  const std::string prefix = std::string(name) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return static_cast<pid_t>(std::atol(line.c_str() + prefix.size()));
  return 0;
}

// starttime of /proc/PID/stat (field 22): a pid reused by another process differs.
uint64_t startTimeOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  unsigned long long value = 0;
  // Fields after the command: state is field 3; starttime is field 22.
  const char* p = text.c_str() + close + 1;
  for (int field = 3; field < 22 && *p; ++field) {
    while (*p == ' ') ++p;
    while (*p && *p != ' ') ++p;
  }
  std::sscanf(p, " %llu", &value);
  return value;
}

std::optional<ExitStatus> exitStatusOf(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.exitCode = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
    s.coreDumped = WCOREDUMP(status);
  } else {
    return std::nullopt;
  }
  return s;
}

bool isGroupStopSignal(int sig) { return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU; }

}  // namespace

ForkFollower::ForkFollower(pid_t pid, bool killWithRecorder) {
  options_ = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC;
  if (killWithRecorder) options_ |= PTRACE_O_EXITKILL;
  // Stops and exits of tracees are announced by SIGCHLD: read it from a descriptor
  // so that the recording loop wakes up at once.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  signalFd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signalFd_ < 0) throw RecordError(std::string("signalfd: ") + std::strerror(errno));
  try {
    seizeAll(pid);
  } catch (...) {
    ::close(signalFd_);
    throw;
  }
  addProcess(pid, false);
  processes_[pid].stopSeen = true;
  lastSweepNs_ = nowNs();
}

void ForkFollower::seizeAll(pid_t pid) {
  // Threads can appear while we go; those made by a thread already traced are traced by
  // the kernel (clone events), the others are found by the next listing.
  for (bool added = true; added;) {
    added = false;
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw RecordError("cannot follow the forks of process " + std::to_string(pid) + ": it is gone");
    while (const dirent* entry = ::readdir(d)) {
      const pid_t tid = static_cast<pid_t>(std::atol(entry->d_name));
      if (tid <= 0 || threads_.count(tid)) continue;
      if (::ptrace(PTRACE_SEIZE, tid, nullptr, options_) != 0) {
        if (errno == ESRCH) continue;  // the thread just exited
        const int err = errno;
        ::closedir(d);
        throw RecordError("cannot follow the forks of process " + std::to_string(pid) + ": ptrace: " +
                          std::strerror(err) + (err == EPERM ? " (is it traced by a debugger already?)" : ""));
      }
      threads_[tid] = {pid, false};
      added = true;
    }
    ::closedir(d);
  }
}

ForkFollower::~ForkFollower() {
  // Let every traced thread go on untraced (and, with EXITKILL, alive): a thread must be
  // stopped to be detached, so the running ones are interrupted first.
  for (auto& [tid, t] : threads_)
    if (!t.stopped) ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
  const uint64_t deadline = nowNs() + 1'000'000'000;
  for (auto& [tid, t] : threads_) {
    int signal = 0;
    while (!t.stopped && nowNs() < deadline) {
      int status = 0;
      const pid_t r = ::waitpid(tid, &status, __WALL | WNOHANG);
      if (r == tid && WIFSTOPPED(status)) {
        t.stopped = true;
        // A signal caught on the way is handed over with the detach.
        if ((status >> 16) == 0) signal = WSTOPSIG(status);
      } else if (r == tid || (r < 0 && errno == ECHILD)) {
        break;  // exited
      } else {
        ::usleep(1000);
      }
    }
    if (t.stopped) ::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal)));
  }
  if (signalFd_ >= 0) ::close(signalFd_);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

void ForkFollower::addProcess(pid_t pid, bool held) {
  Process p;
  p.held = held;
  p.startTime = startTimeOf(pid);
  processes_[pid] = p;
}

void ForkFollower::resume(pid_t tid, int signal) {
  ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal)));
  if (auto it = threads_.find(tid); it != threads_.end()) it->second.stopped = false;
}

std::vector<ForkFollower::Event> ForkFollower::poll() {
  signalfd_siginfo info;
  while (::read(signalFd_, &info, sizeof info) == sizeof info) {
  }
  std::vector<Event> events;
  while (true) {
    int status = 0;
    const pid_t tid = ::waitpid(-1, &status, __WALL | WNOHANG);
    if (tid <= 0) break;
    if (WIFSTOPPED(status))
      onStop(tid, status, events);
    else if (WIFEXITED(status) || WIFSIGNALED(status))
      onExit(tid, status, events);
  }
  if (nowNs() - lastSweepNs_ >= kSweepIntervalNs) sweepVanished(events);
  return events;
}

void ForkFollower::onStop(pid_t tid, int status, std::vector<Event>& events) {
  const int sig = WSTOPSIG(status);
  const int event = status >> 16;
  auto known = threads_.find(tid);
  if (known == threads_.end()) {
    // A new thread or process whose creator's event has not been seen yet.
    const pid_t tgid = statusField(tid, "Tgid");
    if (tgid != 0 && tgid != tid) {
      threads_[tid] = {tgid, false};
      resume(tid);
      return;
    }
    threads_[tid] = {tid, true};
    addProcess(tid, true);
    processes_[tid].stopSeen = true;
    events.push_back({Event::Kind::Fork, tid, statusField(tid, "PPid"), std::nullopt});
    return;
  }
  Thread& thread = known->second;
  switch (event) {
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE: {
      unsigned long child = 0;
      ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &child);
      const pid_t c = static_cast<pid_t>(child);
      if (c > 0 && !threads_.count(c)) {
        const pid_t tgid = statusField(c, "Tgid");
        if (tgid != 0 && tgid != c) {
          threads_[c] = {tgid, false};  // a thread: resumed at its first stop
        } else {
          threads_[c] = {c, false};
          addProcess(c, true);
          events.push_back({Event::Kind::Fork, c, thread.tgid, std::nullopt});
        }
      }
      resume(tid);
      return;
    }
    case PTRACE_EVENT_EXEC: {
      unsigned long former = 0;
      ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &former);
      // A thread other than the leader exec'd: it now has the leader's id.
      if (static_cast<pid_t>(former) != tid) threads_.erase(static_cast<pid_t>(former));
      thread.stopped = true;
      if (auto p = processes_.find(tid); p != processes_.end()) {
        p->second.held = true;
        p->second.startTime = startTimeOf(tid);
      } else {
        addProcess(tid, true);
      }
      events.push_back({Event::Kind::Exec, tid, 0, std::nullopt});
      return;
    }
    case PTRACE_EVENT_STOP:
      if (isGroupStopSignal(sig)) {
        // Stopped by SIGSTOP & co.: it stays stopped until SIGCONT, as without us.
        ::ptrace(PTRACE_LISTEN, tid, nullptr, nullptr);
        return;
      }
      if (auto p = processes_.find(tid); p != processes_.end() && !p->second.stopSeen) {
        // The first stop of a new process: it waits there until its probes are in.
        p->second.stopSeen = true;
        thread.stopped = true;
        if (releasedEarly_.erase(tid) || !p->second.held) resume(tid);
        return;
      }
      resume(tid);
      return;
    default:
      resume(tid, sig);  // a signal for the process: passed on
      return;
  }
}

void ForkFollower::onExit(pid_t tid, int status, std::vector<Event>& events) {
  const auto t = threads_.find(tid);
  const pid_t tgid = t == threads_.end() ? tid : t->second.tgid;
  if (t != threads_.end()) threads_.erase(t);
  // The leader is reported last, once the whole process is gone.
  if (tid == tgid && processes_.erase(tid)) {
    releasedEarly_.erase(tid);
    events.push_back({Event::Kind::Exit, tid, 0, exitStatusOf(status)});
  }
}

void ForkFollower::sweepVanished(std::vector<Event>& events) {
  lastSweepNs_ = nowNs();
  // Every exit is reported to a tracer; this only guards against a process that left
  // our tracing some other way, so that the recording still ends.
  for (auto it = processes_.begin(); it != processes_.end();) {
    if (startTimeOf(it->first) == it->second.startTime && it->second.startTime != 0) {
      ++it;
      continue;
    }
    const pid_t pid = it->first;
    for (auto t = threads_.begin(); t != threads_.end();) t = t->second.tgid == pid ? threads_.erase(t) : std::next(t);
    releasedEarly_.erase(pid);
    it = processes_.erase(it);
    events.push_back({Event::Kind::Exit, pid, 0, std::nullopt});
  }
}

void ForkFollower::release(pid_t pid) {
  const auto p = processes_.find(pid);
  if (p == processes_.end() || !p->second.held) return;
  p->second.held = false;
  const auto t = threads_.find(pid);
  if (t != threads_.end() && t->second.stopped)
    resume(pid);
  else
    releasedEarly_.insert(pid);
}

}  // namespace heaptrail::recorder
