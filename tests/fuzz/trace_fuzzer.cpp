// libFuzzer target over what a trace attached to a bug report goes through: the reader,
// the replay and the report (without symbolization). Any crash, sanitizer report, or
// exception other than the reader's and Cap'n Proto's documented ones is a finding; so is
// a replay that reads ahead on a second thread and ends with another state than the
// replay on one thread.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <kj/exception.h>

#include "analyzer/leak_report.h"
#include "analyzer/replay.h"
#include "schema/trace_error.h"
#include "schema/trace_reader.h"
#include "tests/fuzz/raw_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Raw inputs (uncompressed messages) reach the deeper layers; others are taken as
  // trace files as they are.
  std::string built;
  if (heaptrail::fuzz::rawToTrace(data, size, built)) {
    data = reinterpret_cast<const uint8_t*>(built.data());
    size = built.size();
  }
  std::string states[2];
  for (const bool readAhead : {false, true}) {
    std::string& state = states[readAhead];
    try {
      heaptrail::schema::TraceReader reader("fuzz-input", data, size);
      heaptrail::analyzer::ReplayOptions replayOptions;
      replayOptions.readAheadFromBytes = readAhead ? 0 : UINT64_MAX;
      heaptrail::analyzer::Replay replay(replayOptions);
      replay.run(reader);
      const auto& s = replay.stats();
      state = std::to_string(s.chunks) + " chunks, " + std::to_string(s.events) + " events, " +
              std::to_string(s.allocations) + " allocations, " + std::to_string(s.frees) + " frees, " +
              std::to_string(s.bytesAllocated) + " bytes, " + std::to_string(s.peakBytes) + " peak, " +
              std::to_string(replay.damageCount()) + " damaged, end " +
              std::to_string(static_cast<int>(replay.end())) + ", " + replay.problem();
      heaptrail::analyzer::ReportOptions options;
      options.top = 0;
      (void)heaptrail::analyzer::buildReport(replay, options, {});
    } catch (const heaptrail::schema::TraceError& e) {
      state = std::string("TraceError ") + e.what();
    } catch (const kj::Exception& e) {
      state = std::string("kj::Exception ") + e.getDescription().cStr();
    }
  }
  if (states[0] != states[1]) {
    std::fprintf(stderr, "read-ahead differs:\n  one thread: %s\n  read-ahead: %s\n", states[0].c_str(),
                 states[1].c_str());
    std::abort();
  }
  return 0;
}
