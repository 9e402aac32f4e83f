#pragma once

#include <signal.h>

#include "common/unique_fd.h"

namespace heaptrail::recorder {

// Blocks the stop signals (SIGINT, SIGTERM, SIGHUP) for the whole recorder and reads
// them from a signalfd, so that no signal interrupts a write half-way. Restores the
// signal mask on destruction.
class StopSignals {
 public:
  StopSignals();  // throws RecordError
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  int fd() const { return fd_.get(); }
  // The signal received, 0 if none.
  int take();

 private:
  sigset_t set_{}, old_{};
  common::UniqueFd fd_;
};

}  // namespace heaptrail::recorder
