// A one-line progress display on a terminal for long analyses: bytes of the trace read
// and events per second, shown only once the work has taken a second and redrawn at most
// four times a second; erased when done. Off when stderr is not a terminal or --quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace heaptrail::analyzer {

class ProgressLine {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `enabled` false: never writes anything.
  ProgressLine(std::ostream& err, std::string label, bool enabled, Clock clock = std::chrono::steady_clock::now);
  ~ProgressLine() { finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void update(uint64_t bytesRead, uint64_t fileSize, uint64_t events);
  // Erases the line if one was drawn.
  void finish();

  // Whether the process's stderr is a terminal (the only place a progress line belongs).
  static bool stderrIsTerminal();

 private:
  std::ostream& err_;
  std::string label_;
  bool enabled_;
  Clock clock_;
  std::chrono::steady_clock::time_point start_, lastDraw_;
  bool drawn_ = false;
};

}  // namespace heaptrail::analyzer
