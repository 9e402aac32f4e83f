#include "analyzer/recording_end.h"

#include "common/saturating.h"

namespace heaptrail::analyzer {

std::optional<RecordingEnd> readRecordingEnd(const schema::TraceReader& reader) {
  const auto footer = reader.footer();
  if (!footer) return std::nullopt;
  RecordingEnd end;
  end.endTimeNs = footer->getEndTimeNs();
  end.reason = footer->getEndReason();
  end.error = footer->getErrorMessage().cStr();
  end.events = footer->getEventsTotal();
  end.stacks = footer->getStacksTotal();
  end.chunks = footer->getChunksTotal();
  end.unwindTables = footer->getUnwindTables();
  end.unwindTableBytes = footer->getUnwindTableBytes();
  end.unwindMapBytes = footer->getUnwindMapBytes();
  for (auto lost : footer->getLost()) {
    const auto kind = static_cast<size_t>(lost.getKind());
    if (kind < end.lostByKind.size()) end.lostByKind[kind] = common::saturatingAdd(end.lostByKind[kind], lost.getCount());
  }
  return end;
}

}  // namespace heaptrail::analyzer
