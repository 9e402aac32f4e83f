#include "recorder/trace_header.h"

#include <sys/utsname.h>
#include <unistd.h>

#include "recorder/clock.h"
#include "recorder/kernel_recording.h"

#ifndef HEAPTRAIL_VERSION
#define HEAPTRAIL_VERSION "unknown"
#endif

namespace heaptrail::recorder {

void writeTraceHeader(schema::TraceWriter& writer, const RecordOptions& options, const RecordingStart& start) {
  utsname uts{};
  ::uname(&uts);
  const uint64_t monotonic = clockNs();
  const uint64_t realtime = clockNs(CLOCK_REALTIME);
  schema::EncodingOptions encoding;
  encoding.timeResolutionNs = options.timeResolutionNs;
  writer.setEncoding(encoding);
  writer.writeHeader([&](schema::Header::Builder h) {
    h.setRecorderVersion(HEAPTRAIL_VERSION);
    h.setKernelRelease(uts.release);
    h.setMachine(uts.machine);
    h.setHostname(uts.nodename);
    h.setPageSize(static_cast<uint32_t>(::sysconf(_SC_PAGESIZE)));
    h.setClock(schema::Clock::MONOTONIC);
    h.getWallClockAnchor().setClockNs(monotonic);
    h.getWallClockAnchor().setRealtimeNs(realtime);
    h.setStartTimeNs(start.startNs);
    if (start.target) {
      auto target = h.initTargets(1)[0];
      target.setPid(static_cast<uint32_t>(start.target->pid()));
      const auto& argv = start.target->commandLine();
      auto args = target.initCommandLine(static_cast<unsigned>(argv.size()));
      for (unsigned i = 0; i < argv.size(); ++i) args.set(i, argv[i]);
      target.setStartedByRecorder(start.target->launched());
    }
    if (start.kernel) start.kernel->writeHeader(h.initKernel());

    auto o = h.initOptions();
    o.setAllocatorObject(start.allocatorObject);
    o.setMinSize(options.minSize);
    o.setMaxSize(options.maxSize);
    o.setStackDepth(options.stackDepth);
    o.setRingBufferBytes(options.ringBufferBytes);
    o.setDurationNs(options.durationNs);
    auto functions = o.initProbedFunctions(static_cast<unsigned>(start.hooked.size()));
    for (unsigned i = 0; i < start.hooked.size(); ++i) functions.set(i, start.hooked[i].symbol);
    o.setFollowForks(options.followForks);
    o.setReleaseStacks(options.releaseStacks);
    o.setStackMode(unwind::stackModeName(options.stackMode));
    auto custom = o.initCustomFunctions(static_cast<unsigned>(options.customFunctions.size()));
    for (unsigned i = 0; i < options.customFunctions.size(); ++i) custom.set(i, options.customFunctions[i]);
  });
}

void writeTraceFooter(schema::TraceWriter& writer, uint64_t endNs, const std::array<uint64_t, HT_KIND_COUNT>& lost,
                      RecordSummary& summary) {
  try {
    writer.writeFooter([&](schema::Footer::Builder f) {
      f.setEndTimeNs(endNs);
      f.setEndReason(summary.endReason);
      f.setErrorMessage(summary.error);
      f.setEventsTotal(summary.events);
      f.setStacksTotal(summary.stacks);
      f.setUnwindTables(static_cast<uint32_t>(summary.unwindTables));
      f.setUnwindTableBytes(summary.unwindTableBytes);
      f.setUnwindMapBytes(summary.unwindMapBytes);
      unsigned kinds = 0;
      for (uint64_t n : lost) kinds += n > 0;
      auto list = f.initLost(kinds);
      unsigned i = 0;
      for (uint32_t kind = 0; kind < HT_KIND_COUNT; ++kind) {
        if (!lost[kind]) continue;
        list[i].setKind(static_cast<schema::EventKind>(kind));
        list[i++].setCount(lost[kind]);
      }
    });
    writer.sync();
  } catch (const std::exception& e) {
    if (summary.error.empty()) summary.error = e.what();
    summary.endReason = schema::EndReason::ERROR;
  }
  summary.bytesWritten = writer.bytesWritten();
  summary.uncompressedBytes = writer.uncompressedBytes();
}

}  // namespace heaptrail::recorder
