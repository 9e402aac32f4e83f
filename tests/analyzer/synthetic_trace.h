// Writes small synthetic traces through the real writer, for exact replay tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "analyzer/leak_report.h"
#include "analyzer/replay.h"
#include "schema/trace_reader.h"
#include "schema/trace_writer.h"
#include "tests/support/synthetic_header.h"
#include "tests/support/temp_dir.h"

namespace heaptrail::testing {

using schema::EventKind;

inline constexpr uint64_t kStart = 1'000'000'000;  // Header.startTimeNs of every synthetic trace
inline constexpr uint32_t kPid = 4242;
inline constexpr uint64_t kMs = 1'000'000;
inline constexpr uint64_t kSec = 1'000'000'000;

// Times are relative to kStart.
class SyntheticTrace {
 public:
  explicit SyntheticTrace(const std::filesystem::path& path) : writer_(path) {
    writer_.writeHeader([](schema::Header::Builder h) { fillSyntheticHeader(h, {kStart, kPid}); });
  }

  SyntheticTrace& event(EventKind kind, uint64_t t, uint64_t address, uint64_t size, uint32_t stack = 0,
                        uint32_t tid = kPid, uint32_t pid = kPid) {
    // Like the recorder, define a stack before its first use (a made-up frame unless the
    // test gave one with stack()).
    if (stack != 0 && !defined_.count(stack)) this->stack(stack, {0x400000 + stack});
    chunk_.addEvent({kind, kStart + t, pid, tid, address, size, stack});
    lastTime_ = std::max(lastTime_, t);
    return *this;
  }
  SyntheticTrace& malloc(uint64_t t, uint64_t address, uint64_t size, uint32_t stack) {
    return event(EventKind::MALLOC, t, address, size, stack);
  }
  SyntheticTrace& free(uint64_t t, uint64_t address) { return event(EventKind::FREE, t, address, 0); }
  SyntheticTrace& realloc(uint64_t t, uint64_t oldAddress, uint64_t newAddress, uint64_t size, uint32_t stack,
                          uint32_t tid = kPid) {
    event(EventKind::REALLOC_RELEASE, t, oldAddress, size, 0, tid);
    return event(EventKind::REALLOC, t, newAddress, size, stack, tid);
  }
  SyntheticTrace& mmap(uint64_t t, uint64_t address, uint64_t size, uint32_t stack) {
    return event(EventKind::MMAP, t, address, size, stack);
  }
  SyntheticTrace& munmap(uint64_t t, uint64_t address, uint64_t size) {
    return event(EventKind::MUNMAP, t, address, size);
  }
  SyntheticTrace& stack(uint32_t id, std::vector<uint64_t> frames) {
    defined_.insert(id);
    chunk_.addStack(id, frames);
    return *this;
  }
  SyntheticTrace& mapping(uint64_t t, uint64_t start, uint64_t end, uint64_t fileOffset, std::string path,
                          std::string buildId = "", uint32_t pid = kPid) {
    chunk_.addMapping({kStart + t, pid, start, end, fileOffset, std::move(path), std::move(buildId),
                       schema::MappingSource::MMAP_EVENT, true, 0});
    return *this;
  }
  SyntheticTrace& function(schema::FunctionRecord f) {
    chunk_.addFunction(std::move(f));
    return *this;
  }
  SyntheticTrace& lost(EventKind kind, uint64_t count) {
    chunk_.addLost(kind, count);
    return *this;
  }
  SyntheticTrace& flush() {
    writer_.writeChunk(chunk_);
    return *this;
  }
  uint64_t bytesWritten() const { return writer_.bytesWritten(); }
  // Ends the trace at `end` (relative) with a footer; footerLost as given.
  void finish(uint64_t end, std::vector<std::pair<EventKind, uint64_t>> footerLost = {}) {
    if (!chunk_.empty()) flush();
    writer_.writeFooter([&](schema::Footer::Builder f) {
      f.setEndTimeNs(kStart + end);
      f.setEndReason(schema::EndReason::TARGET_EXITED);
      auto lost = f.initLost(footerLost.size());
      for (size_t i = 0; i < footerLost.size(); ++i) {
        lost[i].setKind(footerLost[i].first);
        lost[i].setCount(footerLost[i].second);
      }
    });
  }
  // Leaves the trace without a footer, as if the recorder had been killed.
  void abandon() {
    if (!chunk_.empty()) flush();
  }

 private:
  schema::TraceWriter writer_;
  schema::ChunkBuilder chunk_;
  uint64_t lastTime_ = 0;
  std::set<uint32_t> defined_;
};

struct Analysis {
  analyzer::ReplayStats stats;
  analyzer::LeakReport report;
};

inline Analysis analyze(const std::filesystem::path& path, analyzer::ReportOptions options = {},
                        const analyzer::FrameResolver& resolver = {}) {
  schema::TraceReader reader(path);
  analyzer::Replay replay(analyzer::ReplayOptions{options.atNs});
  replay.run(reader);
  return {replay.stats(), analyzer::buildReport(replay, options, resolver)};
}

}  // namespace heaptrail::testing
