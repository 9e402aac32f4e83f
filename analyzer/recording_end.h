// How a recording ended, as its footer says: the totals a complete trace carries beside
// its chunks. A trace that was cut off has no footer.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "schema/event_kinds.h"
#include "schema/trace_reader.h"

namespace heaptrail::analyzer {

struct RecordingEnd {
  uint64_t endTimeNs = 0;
  schema::EndReason reason = schema::EndReason::ERROR;
  std::string error;  // when reason is ERROR
  uint64_t events = 0;
  uint64_t stacks = 0;
  uint64_t chunks = 0;
  uint32_t unwindTables = 0;      // files with an unwind table in BPF maps (0: none, or an older recorder)
  uint64_t unwindTableBytes = 0;  // their rows
  uint64_t unwindMapBytes = 0;    // all unwinding maps, approximate
  std::array<uint64_t, schema::kEventKindCount> lostByKind{};  // kinds this build knows
};

// The footer of `reader`, once reading has reached it; nullopt for a trace without one.
std::optional<RecordingEnd> readRecordingEnd(const schema::TraceReader& reader);

}  // namespace heaptrail::analyzer
