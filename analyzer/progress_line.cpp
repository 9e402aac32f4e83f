#include "analyzer/progress_line.h"

#include <unistd.h>

#include <cstdio>

#include "common/safe_text.h"
#include "common/units.h"

namespace heaptrail::analyzer {

ProgressLine::ProgressLine(std::ostream& err, std::string label, bool enabled, Clock clock)
    : err_(err), label_(common::printable(label)), enabled_(enabled), clock_(std::move(clock)) {
  if (enabled_) start_ = clock_();
}

bool ProgressLine::stderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

void ProgressLine::update(uint64_t bytesRead, uint64_t fileSize, uint64_t events) {
  if (!enabled_) return;
  const auto now = clock_();
  if (now - start_ < std::chrono::seconds(1)) return;
  if (drawn_ && now - lastDraw_ < std::chrono::milliseconds(250)) return;
  lastDraw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.0f", seconds > 0 ? static_cast<double>(events) / seconds : 0.0);
  const unsigned percent = fileSize ? static_cast<unsigned>(bytesRead * 100 / fileSize) : 0;
  err_ << "\r\x1b[K" << label_ << ": " << common::formatBytes(bytesRead) << " of " << common::formatBytes(fileSize) << " ("
       << percent << "%), " << events << " events, " << rate << " events/s" << std::flush;
  drawn_ = true;
}

void ProgressLine::finish() {
  if (!drawn_) return;
  err_ << "\r\x1b[K" << std::flush;
  drawn_ = false;
}

}  // namespace heaptrail::analyzer
