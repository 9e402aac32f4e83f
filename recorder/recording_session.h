#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "recorder/options.h"
#include "recorder/target_process.h"
#include "schema/trace.capnp.h"

namespace heaptrail::recorder {

struct RecordSummary {
  std::filesystem::path output;
  pid_t pid = 0;
  uint64_t events = 0;
  uint64_t allocations = 0;
  uint64_t frees = 0;
  uint64_t heapAllocations = 0;  // allocations of the malloc and new families (no mmap)
  uint64_t stacks = 0;
  uint64_t incompleteStacks = 0;   // distinct stacks whose walk stopped before the outermost frame
  uint64_t deferredStacks = 0;     // events whose walk the recorder finished (a mapping new to BPF)
  uint64_t unwindTables = 0;       // files whose unwind table was loaded
  uint64_t unwindTableBytes = 0;   // their rows
  uint64_t unwindMapBytes = 0;     // kernel memory of the unwinding maps, approximate
  uint64_t lost = 0;
  uint64_t lostMappingRecords = 0;
  uint64_t bytesWritten = 0;
  uint64_t uncompressedBytes = 0;
  uint64_t durationNs = 0;
  schema::EndReason endReason = schema::EndReason::TARGET_EXITED;
  std::optional<ExitStatus> exitStatus;
  std::string error;  // set when endReason is ERROR
  std::vector<std::string> warnings;  // for the user, one sentence each
  bool workloadTerminated = false;  // the started command was still running: it was sent SIGTERM
};

// Runs one recording from start to end. Throws RecordError when it cannot start (the
// output path is left as it was then: output_file.h); errors while recording end it
// with a footer that says so. A started command does not outlive the recording.
// `onStarted` is called once everything is attached and the target runs (output and
// pid of the summary are set then).
// `onProgress`, when given, is called about once a second while recording with the
// counts so far (durationNs, events, bytesWritten, lost).
RecordSummary runRecording(const RecordOptions& options,
                           const std::function<void(const RecordSummary&)>& onStarted = {},
                           const std::function<void(const RecordSummary&)>& onProgress = {});

// Kernel allocations alone (--kernel without -p or -- cmd): recorder/kernel_session.cpp.
RecordSummary runKernelRecording(const RecordOptions& options,
                                 const std::function<void(const RecordSummary&)>& onStarted,
                                 const std::function<void(const RecordSummary&)>& onProgress = {});

}  // namespace heaptrail::recorder
