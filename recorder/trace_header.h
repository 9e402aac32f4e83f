#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/heaptrail_event.h"
#include "recorder/options.h"
#include "recorder/recording_session.h"
#include "recorder/target_process.h"
#include "schema/records.h"
#include "schema/trace_writer.h"

namespace heaptrail::recorder {

// What the header says about one recording besides the options it ran with.
class KernelRecording;

struct RecordingStart {
  uint64_t startNs = 0;  // CLOCK_MONOTONIC
  const TargetProcess* target;  // nullptr: kernel allocations only (--kernel)
  std::string allocatorObject;  // as the target sees it
  const std::vector<schema::FunctionRecord>& hooked;
  KernelRecording* kernel = nullptr;  // --kernel: fills Header.kernel
};

// Writes the trace's header: this machine, the clocks, the target, the options.
void writeTraceHeader(schema::TraceWriter& writer, const RecordOptions& options, const RecordingStart& start);

// Writes the footer (how the recording ended, totals, events lost by kind) and syncs the
// file; a failure becomes the summary's error. Fills the summary's byte counts.
void writeTraceFooter(schema::TraceWriter& writer, uint64_t endNs, const std::array<uint64_t, HT_KIND_COUNT>& lost,
                      RecordSummary& summary);

}  // namespace heaptrail::recorder
