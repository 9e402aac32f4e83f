// libFuzzer target over what a trace attached to a bug report goes through: the reader,
// the replay and the report (without symbolization). Any crash, sanitizer report, or
// exception other than the reader's and Cap'n Proto's documented ones is a finding.
#include <cstddef>
#include <cstdint>

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
  try {
    heaptrail::schema::TraceReader reader("fuzz-input", data, size);
    heaptrail::analyzer::Replay replay;
    replay.run(reader);
    heaptrail::analyzer::ReportOptions options;
    options.top = 0;
    (void)heaptrail::analyzer::buildReport(replay, options, {});
  } catch (const heaptrail::schema::TraceError&) {
  } catch (const kj::Exception&) {
  }
  return 0;
}
