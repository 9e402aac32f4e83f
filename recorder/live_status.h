// The one line heaptrail-record keeps up to date on a terminal while it records: elapsed
// time, events, event rate, bytes written and events lost so far (in bold red once any
// are lost), refreshed about once a second. Never when stderr is not a terminal (logs
// and pipes get only the final summary), and not with --quiet.
#pragma once

#include <cstdint>
#include <string>

#include "recorder/recording_session.h"

namespace heaptrail::recorder {

class LiveStatus {
 public:
  // Writes to `fd` when `enabled` (the caller checks isatty and --quiet).
  LiveStatus(int fd, bool enabled) : fd_(fd), enabled_(enabled) {}
  ~LiveStatus() { clear(); }
  LiveStatus(const LiveStatus&) = delete;
  LiveStatus& operator=(const LiveStatus&) = delete;

  void update(const RecordSummary& progress);
  // Erases the line (before anything else is printed).
  void clear();

  // The text of the line, without terminal control sequences around it.
  static std::string format(const RecordSummary& progress, double eventsPerSecond, bool colour);

 private:
  void write(const std::string& text);

  int fd_;
  bool enabled_;
  bool shown_ = false;
  uint64_t lastEvents_ = 0;
  uint64_t lastNs_ = 0;
};

}  // namespace heaptrail::recorder
