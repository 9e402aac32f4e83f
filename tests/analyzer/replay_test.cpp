// Replay exactness on synthetic traces written through the real writer: what is
// outstanding, how it is grouped, filtered and summarized, and what is warned about.
#include <gtest/gtest.h>

#include <set>

#include <fstream>

#include "analyzer/heap_history.h"
#include "analyzer/leak_report.h"
#include "analyzer/replay.h"
#include "tests/analyzer/synthetic_trace.h"

namespace heaptrail::testing {
namespace {

using analyzer::LeakGroup;
using analyzer::ReportOptions;

ReportOptions allGroups() {
  ReportOptions o;
  o.top = 0;
  return o;
}

ReportOptions at(uint64_t atNs, uint64_t sinceNs = 0) {
  ReportOptions o = allGroups();
  o.atNs = atNs;
  o.sinceNs = sinceNs;
  return o;
}

// Stack ids far beyond those seen are kept aside from the dense ones: an id first seen that
// way stays one stack when the dense ids later grow past it, per process.
TEST(Replay, HistoryKeepsOneStatePerProcessAndStackWhateverTheIdOrder) {
  analyzer::HeapHistory h;
  h.begin(0);
  h.allocated(7, 100000, 10, 1);
  for (uint32_t id = 1; id <= 120000; id += 1000) h.allocated(7, id, 1, 2);
  h.allocated(7, 100000, 10, 3);
  h.allocated(8, 100000, 5, 3);
  h.released(7, 100000, 10, 4);
  h.released(9, 100000, 10, 4);
  ASSERT_NE(h.totals(7, 100000), nullptr);
  EXPECT_EQ(h.totals(7, 100000)->allocations, 2u);
  EXPECT_EQ(h.totals(7, 100000)->bytes, 20u);
  EXPECT_EQ(h.totals(8, 100000)->bytes, 5u);
  EXPECT_EQ(h.totals(9, 100000), nullptr);
  EXPECT_EQ(h.totals(7, 1001)->allocations, 1u);
  EXPECT_EQ(h.totals(7, 1002), nullptr);
  size_t states = 0;
  h.forEachStack([&](uint32_t, uint32_t, const analyzer::StackTotals&) { ++states; });
  EXPECT_EQ(states, 1u + 120u + 1u);
  uint64_t width = 0;
  EXPECT_EQ(h.stackSeries(7, 100000, 4, width).back(), 10);
}

TEST(Replay, GroupsByStackAndSortsByBytes) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.stack(1, {0x401000}).stack(2, {0x402000}).stack(3, {0x403000});
  t.malloc(1 * kMs, 0x1000, 100, 1)
      .malloc(2 * kMs, 0x2000, 300, 2)
      .malloc(3 * kMs, 0x3000, 100, 1)
      .malloc(4 * kMs, 0x4000, 50, 3)
      .malloc(5 * kMs, 0x5000, 100, 1)
      .malloc(6 * kMs, 0x6000, 999, 3)
      .free(7 * kMs, 0x6000);
  t.finish(10 * kMs);

  const auto a = analyze(dir / "t.htr", allGroups());
  const auto& leaks = a.report.leaks;
  ASSERT_EQ(leaks.size(), 3u);
  EXPECT_EQ(leaks[0].stack.stackId, 1u);
  EXPECT_EQ(leaks[0].bytes, 300u);
  EXPECT_EQ(leaks[0].count, 3u);
  EXPECT_EQ(leaks[0].oldestAgeNs, 9 * kMs);
  EXPECT_EQ(leaks[0].youngestAgeNs, 5 * kMs);
  EXPECT_EQ(leaks[1].stack.stackId, 2u);  // same bytes as stack 1, fewer allocations
  EXPECT_EQ(leaks[1].bytes, 300u);
  EXPECT_EQ(leaks[1].count, 1u);
  EXPECT_EQ(leaks[2].stack.stackId, 3u);
  EXPECT_EQ(leaks[2].bytes, 50u);
  EXPECT_EQ(leaks[2].count, 1u);
  ASSERT_EQ(leaks[2].stack.frames.size(), 1u);
  EXPECT_EQ(leaks[2].stack.frames[0].address, 0x403000u);

  const auto& s = a.report.summary;
  EXPECT_EQ(s.status, "complete");
  EXPECT_EQ(s.analysisNs, 10 * kMs);
  EXPECT_EQ(s.events, 7u);
  EXPECT_EQ(s.allocations, 6u);
  EXPECT_EQ(s.frees, 1u);
  EXPECT_EQ(s.bytesAllocated, 1649u);
  EXPECT_EQ(s.outstandingBytes, 650u);
  EXPECT_EQ(s.outstandingAllocations, 5u);
  EXPECT_EQ(s.stackGroups, 3u);
  EXPECT_TRUE(a.report.warnings.empty());
}

TEST(Replay, TopAndMinBytes) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  for (uint32_t i = 1; i <= 5; ++i) t.malloc(i * kMs, 0x1000 * i, 100 * i, i);  // stack i holds 100*i bytes
  t.finish(10 * kMs);

  ReportOptions top2;
  top2.top = 2;
  auto a = analyze(dir / "t.htr", top2);
  ASSERT_EQ(a.report.leaks.size(), 2u);
  EXPECT_EQ(a.report.leaks[0].bytes, 500u);
  EXPECT_EQ(a.report.leaks[1].bytes, 400u);
  EXPECT_EQ(a.report.summary.stackGroups, 5u);

  EXPECT_EQ(analyze(dir / "t.htr", ReportOptions{}).report.leaks.size(), 5u);  // default top 10

  ReportOptions minBytes = allGroups();
  minBytes.minBytes = 300;  // exactly 300 is kept
  a = analyze(dir / "t.htr", minBytes);
  ASSERT_EQ(a.report.leaks.size(), 3u);
  EXPECT_EQ(a.report.leaks.back().bytes, 300u);
  EXPECT_EQ(a.report.summary.stackGroups, 3u);
  minBytes.minBytes = 301;
  EXPECT_EQ(analyze(dir / "t.htr", minBytes).report.leaks.size(), 2u);
}

TEST(Replay, SinceKeepsAgeExactlyDAndDropsOneNanosecondLess) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  const uint64_t d = 60 * kSec;
  const uint64_t point = 100 * kSec;
  t.malloc(point - d, 0x1000, 10, 1);       // age exactly D
  t.malloc(point - d + 1, 0x2000, 20, 2);   // age D - 1 ns
  t.malloc(point - d - 1, 0x3000, 40, 1);   // age D + 1 ns
  t.finish(point);

  ReportOptions since = allGroups();
  since.sinceNs = d;
  auto a = analyze(dir / "t.htr", since);  // analysis point: the footer's end time
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 50u);
  EXPECT_EQ(a.report.leaks[0].count, 2u);
  EXPECT_EQ(a.report.leaks[0].oldestAgeNs, d + 1);
  EXPECT_EQ(a.report.leaks[0].youngestAgeNs, d);
  EXPECT_EQ(a.report.summary.matchingBytes, 50u);
  EXPECT_EQ(a.report.summary.outstandingBytes, 70u);

  // The same through --at: ages are measured at the chosen point.
  a = analyze(dir / "t.htr", at(point, d));
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 50u);
  a = analyze(dir / "t.htr", at(point - 1, d));  // now only the D+1 one is old enough
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 40u);
}

TEST(Replay, AtShowsTheStateAtThatTimeAndIgnoresLaterEvents) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kSec, 0x1000, 100, 1).malloc(2 * kSec, 0x2000, 200, 2).flush();
  t.free(3 * kSec, 0x1000).malloc(4 * kSec, 0x3000, 400, 3).flush();
  t.free(5 * kSec, 0x2000).malloc(6 * kSec, 0x4000, 800, 4).flush();
  t.finish(7 * kSec);

  auto a = analyze(dir / "t.htr", at(3 * kSec));  // the free at exactly T applies
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 200u);
  EXPECT_EQ(a.report.leaks[0].oldestAgeNs, 1 * kSec);
  EXPECT_EQ(a.report.summary.analysisNs, 3 * kSec);
  EXPECT_EQ(a.report.summary.events, 3u);
  EXPECT_EQ(a.report.summary.peakBytes, 300u);
  EXPECT_EQ(a.report.summary.peakNs, 2 * kSec);

  a = analyze(dir / "t.htr", at(3 * kSec - 1));
  ASSERT_EQ(a.report.leaks.size(), 2u);
  EXPECT_EQ(a.report.summary.outstandingBytes, 300u);

  a = analyze(dir / "t.htr", at(4500 * kMs));
  EXPECT_EQ(a.report.summary.outstandingBytes, 600u);
  EXPECT_EQ(a.report.summary.status, "partial");  // stopped reading before the footer
  EXPECT_TRUE(a.report.warnings.empty());

  a = analyze(dir / "t.htr", at(60 * kSec));
  EXPECT_EQ(a.report.summary.outstandingBytes, 1200u);
  ASSERT_EQ(a.report.warnings.size(), 1u);
  EXPECT_EQ(a.report.warnings[0], "--at 60.0 s is after the last event of the trace (6.0 s)");
}

TEST(Replay, AtHandlesSlightlyOutOfOrderTimestamps) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(10 * kMs, 0x1000, 100, 1)
      .malloc(12 * kMs, 0x2000, 200, 2)   // after T
      .malloc(9 * kMs, 0x3000, 400, 3);   // another thread, delivered later but before T
  t.finish(20 * kMs);
  const auto a = analyze(dir / "t.htr", at(11 * kMs));
  EXPECT_EQ(a.report.summary.outstandingBytes, 500u);
  EXPECT_EQ(a.stats.eventsAfterAt, 1u);
}

TEST(Replay, ReallocChainKeepsOnlyTheFinalBlock) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 4004, 1)
      .realloc(2 * kMs, 0x1000, 0x2000, 4104, 2)  // moved
      .realloc(3 * kMs, 0x2000, 0x2000, 4204, 3); // grown in place
  t.finish(10 * kMs);
  const auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 3u);
  EXPECT_EQ(a.report.leaks[0].bytes, 4204u);
  EXPECT_EQ(a.report.leaks[0].count, 1u);
  EXPECT_EQ(a.report.leaks[0].oldestAgeNs, 7 * kMs);
  EXPECT_EQ(a.report.summary.allocations, 3u);
  EXPECT_EQ(a.report.summary.unknownFrees, 0u);
  EXPECT_EQ(a.report.summary.doubleFrees, 0u);
  EXPECT_EQ(a.report.summary.peakBytes, 4204u);
}

TEST(Replay, FailedReallocRestoresTheOldBlock) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1).realloc(2 * kMs, 0x1000, 0, 1 << 30, 2);
  t.malloc(3 * kMs, 0x5000, 7, 5).realloc(4 * kMs, 0x5000, 0, 1 << 30, 2).free(5 * kMs, 0x5000);
  t.finish(10 * kMs);
  const auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 100u);
  EXPECT_EQ(a.report.leaks[0].oldestAgeNs, 9 * kMs);  // the original allocation time
  EXPECT_EQ(a.report.summary.failedReallocs, 2u);
  EXPECT_EQ(a.report.summary.unknownFrees, 0u);
  EXPECT_EQ(a.report.summary.doubleFrees, 0u);
}

TEST(Replay, ReallocToSizeZeroFrees) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1).realloc(2 * kMs, 0x1000, 0, 0, 2);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_TRUE(a.report.leaks.empty());
  EXPECT_EQ(a.report.summary.outstandingBytes, 0u);
  EXPECT_EQ(a.report.summary.failedReallocs, 0u);
}

TEST(Replay, ReallocOfNullAllocatesAndFreeAfterReallocIsADoubleFree) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.realloc(1 * kMs, 0, 0x3000, 64, 4);
  t.malloc(2 * kMs, 0x1000, 100, 1).realloc(3 * kMs, 0x1000, 0x2000, 200, 2).free(4 * kMs, 0x1000);
  t.finish(10 * kMs);
  const auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 2u);
  EXPECT_EQ(a.report.leaks[0].bytes, 200u);
  EXPECT_EQ(a.report.leaks[1].bytes, 64u);
  EXPECT_EQ(a.report.leaks[1].stack.stackId, 4u);
  EXPECT_EQ(a.report.summary.doubleFrees, 1u);
  EXPECT_EQ(a.report.summary.unknownFrees, 0u);
}

TEST(Replay, ReallocStashesArePerThread) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1).malloc(1 * kMs, 0x2000, 200, 2);
  t.event(EventKind::REALLOC_RELEASE, 2 * kMs, 0x1000, 1 << 30, 0, 11);
  t.event(EventKind::REALLOC_RELEASE, 2 * kMs, 0x2000, 300, 0, 12);
  t.event(EventKind::REALLOC, 3 * kMs, 0x3000, 300, 3, 12);
  t.event(EventKind::REALLOC, 3 * kMs, 0, 1 << 30, 3, 11);  // failed: 0x1000 stays
  t.finish(10 * kMs);
  const auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 2u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 3u);
  EXPECT_EQ(a.report.leaks[0].bytes, 300u);
  EXPECT_EQ(a.report.leaks[1].stack.stackId, 1u);
  EXPECT_EQ(a.report.leaks[1].bytes, 100u);
}

TEST(Replay, ReallocInProgressAtTheAnalysisPointStillHoldsTheOldBlock) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1);
  t.event(EventKind::REALLOC_RELEASE, 5 * kMs, 0x1000, 200);
  t.event(EventKind::REALLOC, 7 * kMs, 0x2000, 200, 2);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", at(6 * kMs));
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 100u);
  a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 2u);
}

TEST(Replay, PartialMunmapShrinksAndSplits) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.mmap(1 * kMs, 0x10000, 0x10000, 1)  // [0x10000, 0x20000)
      .munmap(2 * kMs, 0x10000, 0x1000)  // head
      .munmap(3 * kMs, 0x1F000, 0x1000)  // tail
      .munmap(4 * kMs, 0x14000, 0x1000); // middle: two pieces
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 0xD000u);
  EXPECT_EQ(a.report.leaks[0].count, 1u);  // still one mmap call
  EXPECT_EQ(a.report.leaks[0].oldestAgeNs, 9 * kMs);
  EXPECT_EQ(a.report.summary.peakBytes, 0x10000u);
  EXPECT_EQ(a.report.summary.frees, 3u);
}

// An allocator library's own memory (jemalloc's arena mmap, tcmalloc's start-up objects:
// frame #0 in the library) is counted as allocator-internal, not listed as a leak; in a
// trace without the allocatorLibrary mark (older recorders) it is listed as before.
TEST(Replay, AllocatorLibraryOwnMemoryIsAllocatorInternal) {
  for (const bool marked : {true, false}) {
    TempDir dir;
    SyntheticTrace t(dir / "t.htr");
    const std::string jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    t.function({1, "malloc", EventKind::MALLOC, jemalloc, false, 0, "", false, 0, marked})
        .mapping(0, 0x7f0000000000, 0x7f0000100000, 0, jemalloc)
        .mapping(0, 0x400000, 0x500000, 0, "/app")
        .stack(1, {0x7f0000001234})  // called from jemalloc
        .stack(2, {0x401234})        // called from the program
        .stack(3, {0x7f0000005678})
        .mmap(1 * kMs, 0x7e0000000000, 2 << 20, 1)
        .malloc(2 * kMs, 0x10000, 123, 2)
        .malloc(3 * kMs, 0x20000, 64, 3);
    t.finish(10 * kMs);
    const auto a = analyze(dir / "t.htr", allGroups());
    const auto& s = a.report.summary;
    EXPECT_EQ(s.outstandingBytes, (2u << 20) + 123 + 64) << "outstanding says what is allocated";
    if (marked) {
      ASSERT_EQ(a.report.leaks.size(), 1u);
      EXPECT_EQ(a.report.leaks[0].bytes, 123u);
      EXPECT_EQ(s.allocatorInternalBytes, (2u << 20) + 64);
      EXPECT_EQ(s.allocatorInternalAllocations, 2u);
      EXPECT_EQ(s.stackGroups, 1u);
    } else {
      EXPECT_EQ(a.report.leaks.size(), 3u);
      EXPECT_EQ(s.allocatorInternalAllocations, 0u);
    }
  }
}

TEST(Replay, MunmapCoveringSeveralMappings) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.mmap(1 * kMs, 0x100000, 0x4000, 1)
      .mmap(1 * kMs, 0x104000, 0x4000, 2)
      .mmap(1 * kMs, 0x108000, 0x4000, 3)
      .mmap(1 * kMs, 0x200000, 0x1000, 4)
      .munmap(2 * kMs, 0x102000, 0x8000)   // tail of 1, all of 2, head of 3
      .munmap(3 * kMs, 0x300000, 0x1000)   // covers nothing known: ignored
      .munmap(4 * kMs, 0x0, 0x1000);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 3u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 0x2000u);
  EXPECT_EQ(a.report.leaks[1].stack.stackId, 3u);
  EXPECT_EQ(a.report.leaks[1].bytes, 0x2000u);
  EXPECT_EQ(a.report.leaks[2].stack.stackId, 4u);
  EXPECT_EQ(a.report.leaks[2].bytes, 0x1000u);
  EXPECT_EQ(a.report.summary.outstandingBytes, 0x5000u);
}

TEST(Replay, MunmapOfBothSplitPiecesRemovesTheMapping) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.mmap(1 * kMs, 0x10000, 0x3000, 1).munmap(2 * kMs, 0x11000, 0x1000).munmap(3 * kMs, 0x10000, 0x3000);
  t.mmap(4 * kMs, 0x40000, 0x2000, 2).mmap(5 * kMs, 0x40000, 0x1000, 3);  // MAP_FIXED over part of it
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 2u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 2u);
  EXPECT_EQ(a.report.leaks[0].bytes, 0x1000u);
  EXPECT_EQ(a.report.leaks[1].stack.stackId, 3u);
  EXPECT_EQ(a.report.leaks[1].bytes, 0x1000u);
}

TEST(Replay, MunmapNeverTouchesMallocBlocks) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x500000, 0x2000, 1).munmap(2 * kMs, 0x500000, 0x2000);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 0x2000u);
}

TEST(Replay, FreesOfUnknownAddressesAreCountedNotErrors) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.free(1 * kMs, 0x9000).free(2 * kMs, 0x9100).free(3 * kMs, 0).malloc(4 * kMs, 0x1000, 10, 1);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.unknownFrees, 2u);
  EXPECT_EQ(a.report.summary.frees, 2u);  // free(NULL) is not a free
  EXPECT_EQ(a.report.summary.doubleFrees, 0u);
  EXPECT_EQ(a.report.summary.outstandingBytes, 10u);
  EXPECT_TRUE(a.report.warnings.empty());
}

TEST(Replay, DoubleFreesAreCountedWithTheAllocatingStack) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.stack(5, {0x401005}).stack(6, {0x401006});
  t.malloc(1 * kMs, 0x1000, 100, 5).free(2 * kMs, 0x1000).free(3 * kMs, 0x1000).free(4 * kMs, 0x1000);
  t.malloc(5 * kMs, 0x2000, 50, 6).free(6 * kMs, 0x2000).free(7 * kMs, 0x2000);
  // Reused after the free: freeing it again is fine.
  t.malloc(8 * kMs, 0x2000, 60, 6).free(9 * kMs, 0x2000);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.doubleFrees, 3u);
  EXPECT_EQ(a.report.summary.unknownFrees, 0u);
  ASSERT_EQ(a.report.doubleFrees.size(), 2u);
  EXPECT_EQ(a.report.doubleFrees[0].count, 2u);
  EXPECT_EQ(a.report.doubleFrees[0].stack.stackId, 5u);
  EXPECT_EQ(a.report.doubleFrees[0].bytes, 100u);
  EXPECT_EQ(a.report.doubleFrees[0].firstTimeNs, 3 * kMs);
  ASSERT_EQ(a.report.doubleFrees[0].stack.frames.size(), 1u);
  EXPECT_EQ(a.report.doubleFrees[0].stack.frames[0].address, 0x401005u);
  EXPECT_EQ(a.report.doubleFrees[1].count, 1u);
  EXPECT_EQ(a.report.doubleFrees[1].stack.stackId, 6u);
  EXPECT_EQ(a.report.doubleFrees[1].firstTimeNs, 7 * kMs);
  EXPECT_TRUE(a.report.leaks.empty());
}

// Found by the fuzzer: times so far apart that the history's windows widen by more
// doublings than a window index has bits (undefined behaviour before; UBSan checks it).
TEST(Replay, EventsCenturiesApartKeepExactTotals) {
  TempDir dir;
  const auto path = dir / "far.htr";
  SyntheticTrace trace(path);
  trace.malloc(kMs, 0x1000, 100, 1).malloc(2 * kMs, 0x2000, 50, 2).free(3 * kMs, 0x1000);
  trace.malloc(uint64_t{1} << 62, 0x3000, 7, 3);
  trace.finish((uint64_t{1} << 62) + kMs);
  const auto a = analyze(path);
  EXPECT_EQ(a.stats.allocations, 3u);
  EXPECT_EQ(a.stats.bytesAllocated, 157u);
  EXPECT_EQ(a.report.summary.outstandingBytes, 57u);
}

TEST(Replay, PeakOutstandingAndWhen) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1)
      .mmap(2 * kMs, 0x100000, 0x1000, 2)  // 4196
      .free(3 * kMs, 0x1000)               // 4096
      .malloc(4 * kMs, 0x2000, 50, 1)      // 4146
      .malloc(5 * kMs, 0x3000, 60, 1)      // 4206: the peak
      .munmap(6 * kMs, 0x100000, 0x1000)   // 110
      .malloc(7 * kMs, 0x4000, 4000, 1);   // 4110
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.peakBytes, 4206u);
  EXPECT_EQ(a.report.summary.peakNs, 5 * kMs);
  EXPECT_EQ(a.report.summary.outstandingBytes, 4110u);
  EXPECT_EQ(a.report.summary.bytesAllocated, 8306u);
}

TEST(Replay, LostEventsWarnWithCounts) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1).lost(EventKind::FREE, 7).flush();
  t.lost(EventKind::MALLOC, 2).lost(EventKind::FREE, 1).flush();
  t.finish(10 * kMs, {{EventKind::FREE, 8}, {EventKind::MALLOC, 2}});
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.lostTotal, 10u);
  ASSERT_EQ(a.report.warnings.size(), 1u);
  EXPECT_EQ(a.report.warnings[0],
            "the recorder lost 10 events (malloc: 2, free: 8): a lost free makes its allocation look leaked, "
            "a lost allocation hides one");
}

TEST(Replay, TruncatedTraceIsAnalyzedUpToItsLastCompleteChunk) {
  TempDir dir;
  uint64_t cut = 0;
  {
    SyntheticTrace t(dir / "t.htr");
    t.malloc(1 * kSec, 0x1000, 100, 1).flush();
    t.malloc(2 * kSec, 0x2000, 200, 2).flush();
    cut = t.bytesWritten();
    t.malloc(3 * kSec, 0x3000, 400, 3).free(3 * kSec, 0x1000).flush();
    t.finish(4 * kSec);
  }
  std::filesystem::resize_file(dir / "t.htr", cut + 10);  // inside the third chunk
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.status, "truncated");
  EXPECT_EQ(a.report.summary.outstandingBytes, 300u);
  EXPECT_EQ(a.report.summary.analysisNs, 2 * kSec);
  ASSERT_EQ(a.report.leaks.size(), 2u);
  EXPECT_EQ(a.report.leaks[0].oldestAgeNs, 0u);
  EXPECT_EQ(a.report.leaks[1].oldestAgeNs, 1 * kSec);
  ASSERT_EQ(a.report.warnings.size(), 1u);
  EXPECT_EQ(a.report.warnings[0], "the trace is truncated (file ends inside a record at byte " + std::to_string(cut) +
                                      "): analyzed up to its last complete chunk (2 chunks, 2.0 s of recording)");
}

TEST(Replay, TraceWithoutFooterIsTruncated) {
  TempDir dir;
  {
    SyntheticTrace t(dir / "t.htr");
    t.malloc(1 * kSec, 0x1000, 100, 1).flush();
    t.abandon();
  }
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.status, "truncated");
  ASSERT_EQ(a.report.warnings.size(), 1u);
  EXPECT_EQ(a.report.warnings[0],
            "the trace is truncated (file ends after chunk 1 without a footer (recording was cut off)): analyzed up "
            "to its last complete chunk (1 chunks, 1.0 s of recording)");
}

TEST(Replay, AllocationOverALiveAddressMeansALostFree) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1).malloc(2 * kMs, 0x1000, 30, 2);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 30u);
  EXPECT_EQ(a.report.summary.outstandingBytes, 30u);
  ASSERT_EQ(a.report.warnings.size(), 1u);
  EXPECT_EQ(a.report.warnings[0],
            "1 allocations returned an address that was still allocated: the frees in between were not recorded");
}

TEST(Replay, ProcessesAreSeparateAddressSpaces) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.event(EventKind::MALLOC, 1 * kMs, 0x1000, 100, 1, 7, 7).event(EventKind::MALLOC, 1 * kMs, 0x1000, 200, 2, 8, 8);
  t.event(EventKind::FREE, 2 * kMs, 0x1000, 0, 0, 7, 7);
  t.finish(10 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 200u);
}

TEST(Replay, ManyEventsKeepExactCounts) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  // Enough blocks to grow the hash table several times, freed in a different order.
  const uint64_t n = 50000;
  for (uint64_t i = 0; i < n; ++i) t.malloc(i, 0x10000000 + i * 32, 16, 1 + i % 3);
  t.flush();
  for (uint64_t i = 0; i < n; i += 2) t.free(n + i, 0x10000000 + ((i * 7919) % n) * 32);
  t.finish(3 * n);
  auto a = analyze(dir / "t.htr", allGroups());
  uint64_t freed = 0;
  std::vector<bool> gone(n);
  for (uint64_t i = 0; i < n; i += 2) {
    const uint64_t k = (i * 7919) % n;
    if (!gone[k]) ++freed;
    gone[k] = true;
  }
  EXPECT_EQ(a.report.summary.outstandingAllocations, n - freed);
  EXPECT_EQ(a.report.summary.outstandingBytes, (n - freed) * 16);
  EXPECT_EQ(a.report.summary.doubleFrees, n / 2 - freed);
}

// Records what it was asked, to check module/offset mapping without DWARF.
struct FakeResolver {
  symbols::SymbolizedFrame operator()(const symbols::ModuleRef& module, uint64_t fileOffset) {
    symbols::SymbolizedFrame s;
    s.status = symbols::FrameStatus::Resolved;
    s.frames.push_back({module.path + "@" + std::to_string(fileOffset), "", 0});
    ++*calls;
    return s;
  }
  std::shared_ptr<int> calls = std::make_shared<int>(0);
};

TEST(Replay, FramesUseTheMappingOfTheirTimeAndReturnAddressMinusOne) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.mapping(0, 0x400000, 0x401000, 0x1000, "/app", "\xab\xcd");
  // A plugin mapped, used, unmapped; another library later mapped at the same place.
  t.mapping(1 * kMs, 0x7000000, 0x7001000, 0x2000, "/plugin.so");
  t.stack(1, {0x7000010, 0x400100}).stack(2, {0x7000010}).stack(3, {0x400000, 0x9999999});
  t.malloc(2 * kMs, 0x1000, 100, 1).malloc(2 * kMs, 0x1100, 100, 1);
  t.mapping(5 * kMs, 0x7000000, 0x7002000, 0, "/other.so");
  t.malloc(6 * kMs, 0x2000, 50, 2).malloc(6 * kMs, 0x3000, 10, 3);
  t.finish(10 * kMs);
  FakeResolver resolver;
  auto a = analyze(dir / "t.htr", allGroups(), resolver);
  ASSERT_EQ(a.report.leaks.size(), 3u);
  const auto& f1 = a.report.leaks[0].stack.frames;
  ASSERT_EQ(f1.size(), 2u);
  EXPECT_EQ(f1[0].module, "/plugin.so");
  EXPECT_EQ(f1[0].offset, 0x2010u);
  EXPECT_EQ(f1[0].symbol.outermost().function, "/plugin.so@" + std::to_string(0x200f));
  EXPECT_EQ(f1[1].module, "/app");
  EXPECT_EQ(f1[1].buildId, "\xab\xcd");
  EXPECT_EQ(f1[1].symbol.outermost().function, "/app@" + std::to_string(0x10ff));
  const auto& f2 = a.report.leaks[1].stack.frames;
  ASSERT_EQ(f2.size(), 1u);
  EXPECT_EQ(f2[0].module, "/other.so");
  EXPECT_EQ(f2[0].offset, 0x10u);
  const auto& f3 = a.report.leaks[2].stack.frames;
  ASSERT_EQ(f3.size(), 2u);
  EXPECT_FALSE(f3[0].mapped);  // the return address is the first byte: the call was before the mapping
  EXPECT_FALSE(f3[1].mapped);
  EXPECT_EQ(*resolver.calls, 3);  // each distinct (mapping, offset) once
}

TEST(MapHistory, NewestMappingAtTheTimeWinsAndForksInherit) {
  analyzer::MapHistory maps;
  maps.add({100, 1, 0x1000, 0x2000, 0, "/a", "", schema::MappingSource::PROC_MAPS, true});
  maps.add({200, 1, 0x1000, 0x2000, 0, "/b", "", schema::MappingSource::MMAP_EVENT, true});
  maps.addFork(2, 1);
  EXPECT_EQ(maps.find(1, 0x1500, 150)->path, "/a");
  EXPECT_EQ(maps.find(1, 0x1500, 200)->path, "/b");
  EXPECT_EQ(maps.find(1, 0x1500, 50)->path, "/a");  // before any: the first one after
  EXPECT_EQ(maps.find(2, 0x1500, 300)->path, "/b");
  EXPECT_EQ(maps.find(1, 0x2000, 300), nullptr);
  EXPECT_EQ(maps.find(3, 0x1500, 300), nullptr);
}

}  // namespace
}  // namespace heaptrail::testing

namespace heaptrail::analyzer {
namespace {

TEST(FlatMap, InsertFindEraseAndRetainThroughGrowth) {
  FlatMap<uint64_t> map;
  const uint64_t n = 100000;
  for (uint64_t i = 1; i <= n; ++i) {
    bool inserted = false;
    map.insert(static_cast<uint32_t>(i % 3), i * 16, inserted) = i;
    ASSERT_TRUE(inserted);
  }
  EXPECT_EQ(map.size(), n);
  for (uint64_t i = 1; i <= n; i += 3) ASSERT_TRUE(map.erase(static_cast<uint32_t>(i % 3), i * 16));
  EXPECT_FALSE(map.erase(0, 16));  // wrong pid
  map.retainIf([](uint32_t, uint64_t, uint64_t v) { return v % 2 == 0; });
  uint64_t expected = 0;
  for (uint64_t i = 1; i <= n; ++i) {
    const bool present = (i - 1) % 3 != 0 && i % 2 == 0;
    expected += present;
    const uint64_t* v = map.find(static_cast<uint32_t>(i % 3), i * 16);
    ASSERT_EQ(v != nullptr, present) << i;
    if (v) {
      ASSERT_EQ(*v, i);
    }
  }
  EXPECT_EQ(map.size(), expected);
}

}  // namespace
}  // namespace heaptrail::analyzer

namespace heaptrail::testing {
namespace {

TEST(Replay, ForgettingOldFreedBlocksKeepsCountsExact) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  // Far more freed-and-never-reused blocks than live ones: the replay drops freed
  // records (used only to spot double frees) without disturbing live ones.
  const uint64_t n = 400000;
  for (uint64_t i = 0; i < n; ++i) {
    t.malloc(2 * i, 0x10000000 + i * 64, 8, 1 + i % 2);
    if (i % 100 != 0) t.free(2 * i + 1, 0x10000000 + i * 64);
    if (i % 50000 == 49999) t.flush();
  }
  t.free(3 * n, 0x10000000 + (n - 1) * 64);  // recently freed: still recognised
  t.finish(3 * n);
  const auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.outstandingAllocations, n / 100);
  EXPECT_EQ(a.report.summary.outstandingBytes, n / 100 * 8);
  EXPECT_EQ(a.report.summary.doubleFrees, 1u);
  EXPECT_EQ(a.report.summary.unknownFrees, 0u);
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].stack.stackId, 1u);  // i % 100 == 0 is even
}

}  // namespace
TEST(Replay, FreesByTheWrongFamilyAreReportedWithBothStacks) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.stack(1, {0x401001}).stack(2, {0x401002}).stack(3, {0x401003}).stack(11, {0x402001}).stack(12, {0x402002});
  // Right pairs: no finding.
  t.event(EventKind::OPERATOR_NEW, 1 * kMs, 0x1000, 48, 1).event(EventKind::OPERATOR_DELETE, 2 * kMs, 0x1000, 0, 11);
  t.event(EventKind::OPERATOR_NEW_ARRAY, 3 * kMs, 0x2000, 96, 2)
      .event(EventKind::OPERATOR_DELETE_ARRAY, 4 * kMs, 0x2000, 0, 11);
  t.malloc(5 * kMs, 0x3000, 16, 3).free(6 * kMs, 0x3000);
  // Wrong: new[] + delete (twice from the same places), malloc + delete, new + free,
  // new + realloc (realloc is of the malloc family).
  for (uint64_t i = 0; i < 2; ++i)
    t.event(EventKind::OPERATOR_NEW_ARRAY, (10 + i) * kMs, 0x4000 + i * 0x100, 160, 2)
        .event(EventKind::OPERATOR_DELETE, (12 + i) * kMs, 0x4000 + i * 0x100, 0, 12);
  t.malloc(20 * kMs, 0x5000, 168, 3).event(EventKind::OPERATOR_DELETE, 21 * kMs, 0x5000, 0, 12);
  t.event(EventKind::OPERATOR_NEW, 22 * kMs, 0x6000, 176, 1).event(EventKind::FREE, 23 * kMs, 0x6000, 0, 11);
  t.event(EventKind::OPERATOR_NEW, 24 * kMs, 0x7000, 8, 1).realloc(25 * kMs, 0x7000, 0x7100, 32, 3);
  t.finish(30 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  EXPECT_EQ(a.report.summary.mismatches, 5u);
  EXPECT_EQ(a.report.summary.doubleFrees, 0u);
  ASSERT_EQ(a.report.mismatches.size(), 4u);
  const auto& first = a.report.mismatches[0];
  EXPECT_EQ(first.count, 2u);
  EXPECT_EQ(first.bytes, 160u);
  EXPECT_EQ(first.allocFamily, "new[]");
  EXPECT_EQ(first.releaseFamily, "delete");
  EXPECT_EQ(first.allocStack.stackId, 2u);
  EXPECT_EQ(first.releaseStack.stackId, 12u);
  ASSERT_EQ(first.releaseStack.frames.size(), 1u);
  EXPECT_EQ(first.releaseStack.frames[0].address, 0x402002u);
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& m : a.report.mismatches) pairs.insert({m.allocFamily, m.releaseFamily});
  EXPECT_EQ(pairs, (std::set<std::pair<std::string, std::string>>{
                       {"new[]", "delete"}, {"malloc", "delete"}, {"new", "free"}}));
  // The realloc moved the block: only the new 32-byte block is outstanding.
  ASSERT_EQ(a.report.leaks.size(), 1u);
  EXPECT_EQ(a.report.leaks[0].bytes, 32u);
}

TEST(Replay, DoubleFreeShowsWhereItWasFreedAgain) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.stack(5, {0x401005}).stack(9, {0x409009});
  t.malloc(1 * kMs, 0x1000, 100, 5).event(EventKind::FREE, 2 * kMs, 0x1000, 0, 9).event(EventKind::FREE, 3 * kMs, 0x1000, 0, 9);
  t.finish(4 * kMs);
  auto a = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(a.report.doubleFrees.size(), 1u);
  EXPECT_EQ(a.report.doubleFrees[0].freeStack.stackId, 9u);
  ASSERT_EQ(a.report.doubleFrees[0].freeStack.frames.size(), 1u);
  EXPECT_EQ(a.report.doubleFrees[0].freeStack.frames[0].address, 0x409009u);
}

TEST(Replay, ProcessesAreReportedSeparatelyAndSelectable) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.stack(1, {0x401001});
  // The same stack leaking in two processes (a forked child runs the same code).
  t.event(EventKind::MALLOC, 1 * kMs, 0x1000, 100, 1, kPid, kPid);
  t.event(EventKind::MALLOC, 2 * kMs, 0x1000, 30, 1, 5000, 5000);
  t.event(EventKind::MALLOC, 3 * kMs, 0x2000, 30, 1, 5000, 5000);
  t.finish(4 * kMs);
  auto all = analyze(dir / "t.htr", allGroups());
  ASSERT_EQ(all.report.leaks.size(), 2u);
  EXPECT_EQ(all.report.leaks[0].pid, kPid);
  EXPECT_EQ(all.report.leaks[0].bytes, 100u);
  EXPECT_EQ(all.report.leaks[1].pid, 5000u);
  EXPECT_EQ(all.report.leaks[1].bytes, 60u);
  EXPECT_EQ(all.report.leaks[1].count, 2u);
  EXPECT_EQ(all.report.summary.processes, (std::vector<uint32_t>{kPid, 5000}));
  auto options = allGroups();
  options.pid = 5000;
  auto child = analyze(dir / "t.htr", options);
  ASSERT_EQ(child.report.leaks.size(), 1u);
  EXPECT_EQ(child.report.leaks[0].pid, 5000u);
  EXPECT_EQ(child.report.summary.outstandingBytes, 60u);
}

}  // namespace heaptrail::testing
