#pragma once

#include <cstdint>
#include <filesystem>
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
  uint64_t stacks = 0;
  uint64_t lost = 0;
  uint64_t lostMappingRecords = 0;
  uint64_t bytesWritten = 0;
  uint64_t uncompressedBytes = 0;
  uint64_t durationNs = 0;
  schema::EndReason endReason = schema::EndReason::TARGET_EXITED;
  std::optional<ExitStatus> exitStatus;
  std::string error;  // set when endReason is ERROR
};

// Runs one recording from start to end. Throws RecordError when it cannot start (no
// file is left behind then); errors while recording end it with a footer that says so.
RecordSummary runRecording(const RecordOptions& options);

// The whole command: parse args, record, print the summary. Returns the exit code
// (0 ok, 1 error, 2 usage). Shared by heaptrail-record and `heaptrail record`.
int recordMain(const std::vector<std::string>& args, const std::string& program);

}  // namespace heaptrail::recorder
