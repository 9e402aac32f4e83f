#pragma once

#include <signal.h>

#include <atomic>
#include <thread>

#include "common/unique_fd.h"

namespace heaptrail::recorder {

// The stop signals (SIGINT, SIGTERM, SIGHUP), so that no signal interrupts a write
// half-way and Ctrl-C still works at every moment. They are blocked in every thread
// and taken by a small watcher thread, which makes fd() readable for the main loop.
// When the main thread is stuck (a file the target mapped hangs on a FUSE server, a
// pipe reader stopped reading) it cannot act on them, so the watcher ends the recorder
// itself, by the signal's default action, when a second stop signal comes or the first
// one is not taken within kUnansweredStopSeconds. The kernel then detaches every probe;
// the trace ends at its last complete chunk.
class StopSignals {
 public:
  static constexpr int kUnansweredStopSeconds = 5;

  // Call before any other thread is started: threads inherit the blocked mask.
  StopSignals();  // throws RecordError
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Readable from the first stop signal on (and stays readable).
  int fd() const { return ready_.get(); }
  // The stop signal received, once; 0 if none or already taken.
  int take();
  bool requested() const { return signal_.load() != 0; }
  // For the start-up: throws RecordError when a stop signal came.
  void throwIfRequested();

 private:
  void watch();

  sigset_t set_{}, old_{};
  common::UniqueFd signalFd_;
  common::UniqueFd ready_;     // eventfd: a stop signal arrived
  common::UniqueFd shutdown_;  // eventfd: the watcher must end
  std::atomic<int> signal_{0};
  std::atomic<bool> taken_{false};
  std::thread watcher_;
};

}  // namespace heaptrail::recorder
