#include "recorder/live_status.h"

#include <unistd.h>

#include <cstdio>

#include "common/units.h"

namespace heaptrail::recorder {

std::string LiveStatus::format(const RecordSummary& p, double eventsPerSecond, bool colour) {
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.0f", eventsPerSecond);
  std::string lost = std::to_string(p.lost) + " lost";
  if (colour && p.lost > 0) lost = "\033[1;31m" + lost + "\033[0m";
  return "recording " + common::formatDuration(p.durationNs) + ": " + std::to_string(p.events) + " events (" + rate +
         "/s), " + common::formatBytes(p.bytesWritten) + " written, " + lost;
}

void LiveStatus::update(const RecordSummary& p) {
  if (!enabled_) return;
  const uint64_t dt = p.durationNs > lastNs_ ? p.durationNs - lastNs_ : 0;
  const double rate = dt ? static_cast<double>(p.events - std::min(p.events, lastEvents_)) * 1e9 / static_cast<double>(dt) : 0;
  lastEvents_ = p.events;
  lastNs_ = p.durationNs;
  write("\r\033[K" + format(p, rate, true));
  shown_ = true;
}

void LiveStatus::clear() {
  if (!shown_) return;
  write("\r\033[K");
  shown_ = false;
}

void LiveStatus::write(const std::string& text) {
  const char* data = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, data, left);
    if (n <= 0) return;  // a status line is not worth an error
    data += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace heaptrail::recorder
