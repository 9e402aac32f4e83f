#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "schema/event_codec.h"
#include "recorder/unwind/stack_mode.h"

namespace heaptrail::recorder {

struct RecordOptions {
  std::optional<pid_t> pid;               // -p: attach to a running process
  std::vector<std::string> command;       // -- cmd args: start and record it
  std::filesystem::path output;           // -o; default heaptrail-<pid>.htr; "-": standard output
  std::string user;                       // --user: run the command as this user
  uint64_t durationNs = 0;                // 0: until the target exits or a signal
  uint64_t timeResolutionNs = schema::kDefaultTimeResolutionNs;  // event times are multiples of this
  std::filesystem::path allocatorObject;  // --obj; empty: found from the target
  uint64_t minSize = 0;
  uint64_t maxSize = 0;                   // 0: no limit
  uint32_t stackDepth = 64;
  unwind::StackMode stackMode = unwind::StackMode::Auto;  // --stack-mode
  uint64_t ringBufferBytes = 2ull << 20;
  std::vector<std::string> customFunctions;  // --alloc-fn SYMBOL=KIND, validated
  bool followForks = false;
  bool releaseStacks = false;
  bool verbose = false;
  bool quiet = false;  // no live status line
  bool entryProbes = false;  // hidden --probe-sites=entry: probe first instructions (tests, benchmarks)
  // --kernel: kernel allocations (recorder/kernel_*), alone or beside -p / -- cmd.
  bool kernel = false;
  uint32_t kernelEvents = 0;                    // HT_KGROUP_* bits (--kernel-events)
  uint32_t kernelStackDepth = 32;               // --kernel-stack-depth
  uint64_t kernelRingBufferBytes = 8ull << 20;  // --ringbuf-size applies to it too
};

// True when the trace goes to standard output (-o - or -o /dev/stdout).
inline bool writesToStdout(const RecordOptions& options) {
  return options.output == "-" || options.output == "/dev/stdout";
}

struct ParsedCommandLine {
  enum class Action { Record, ShowHelp, UsageError } action = Action::Record;
  std::string message;  // help text or the usage error
  RecordOptions options;
};

// Parses the recorder's arguments; `program` is the name shown in help and errors
// ("heaptrail-record" or "heaptrail record").
ParsedCommandLine parseRecordOptions(const std::vector<std::string>& args, const std::string& program);

}  // namespace heaptrail::recorder
