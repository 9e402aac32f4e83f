// Frees the C library makes itself (EventKind::LIBC_FREE): applied to the program's live
// blocks (fclose), never reported otherwise (glibc's thread-exit tcache flush frees
// blocks the program freed already, and the cache itself, never handed out).
#include <gtest/gtest.h>

#include <set>

#include "tests/analyzer/synthetic_trace.h"
#include "tests/support/bpf_required.h"
#include "tests/support/run_command.h"
#include "tests/support/trace_contents.h"

namespace heaptrail::testing {
namespace {

TEST(LibcFrees, ApplyToLiveBlocksOnlyAndAreNeverReported) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 40, 1)  // freed by the program, then flushed from its cache
      .free(2 * kMs, 0x1000)
      .event(EventKind::LIBC_FREE, 3 * kMs, 0x1000, 0)
      .malloc(4 * kMs, 0x2000, 472, 2)  // a FILE: fopen, then fclose frees it inside libc
      .event(EventKind::LIBC_FREE, 5 * kMs, 0x2000, 0)
      .event(EventKind::LIBC_FREE, 6 * kMs, 0x9000, 0);  // the cache itself: never seen allocated
  t.finish(10 * kMs);
  const auto a = analyze(dir / "t.htr");
  EXPECT_EQ(a.stats.doubleFrees, 0u);
  EXPECT_EQ(a.stats.unknownFrees, 0u);
  EXPECT_EQ(a.stats.libcInternalFrees, 2u);
  EXPECT_EQ(a.stats.frees, 2u) << "the program's free and fclose's";
  EXPECT_TRUE(a.report.leaks.empty()) << "fclose's free was applied";
  EXPECT_TRUE(a.report.doubleFrees.empty());
}

TEST(LibcFrees, ProgramDoubleFreesAreStillReported) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 40, 1).free(2 * kMs, 0x1000).free(3 * kMs, 0x1000);
  t.finish(10 * kMs);
  EXPECT_EQ(analyze(dir / "t.htr").stats.doubleFrees, 1u);
}

class LibcFreesRecorded : public ::testing::Test {
 protected:
  void SetUp() override { HEAPTRAIL_REQUIRE_BPF_OR_SKIP(); }

  Analysis recordThreads(int threads) {
    const auto file = dir_ / ("t" + std::to_string(threads) + ".htr");
    const auto r = runCommand({HEAPTRAIL_RECORD_BIN, "--release-stacks", "-o", file.string(), "--",
                               std::string(HEAPTRAIL_SAMPLES_DIR) + "/thread_exit", std::to_string(threads)});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    trace_ = loadTrace(file);
    schema::TraceReader reader(file);
    analyzer::Replay replay;
    replay.run(reader);
    outstandingSizes_.clear();
    replay.forEachOutstanding([&](const analyzer::Outstanding& o) { outstandingSizes_.insert(o.size); });
    analyzer::ReportOptions options;
    options.top = 0;
    return analyze(file, options);
  }

  TempDir dir_;
  TraceContents trace_;
  std::multiset<uint64_t> outstandingSizes_;
};

TEST_F(LibcFreesRecorded, ThreadExitIsNotADoubleFree) {
  const auto a = recordThreads(1);
  EXPECT_EQ(trace_.eventsWithSize(40).size(), 5u) << "5 malloc(40)";
  EXPECT_FALSE(trace_.eventsOfKind(EventKind::LIBC_FREE).empty()) << "glibc flushed the thread's cache";
  EXPECT_EQ(a.stats.doubleFrees, 0u);
  EXPECT_TRUE(a.report.doubleFrees.empty());
  EXPECT_EQ(a.stats.unknownFrees, 0u);
  // Nothing the thread allocated is outstanding: its blocks and fopen's FILE were freed.
  EXPECT_EQ(outstandingSizes_.count(40), 0u);
  std::set<uint64_t> fileSizes;
  for (const auto& e : trace_.eventsOfKind(EventKind::MALLOC))
    if (e.size >= 400 && e.size < 600) fileSizes.insert(e.size);
  ASSERT_EQ(fileSizes.size(), 1u) << "fopen's FILE";
  EXPECT_EQ(outstandingSizes_.count(*fileSizes.begin()), 0u) << "fclose's free (inside libc) was lost";
}

TEST_F(LibcFreesRecorded, ManyThreadsExitingLeaveNoUnknownFrees) {
  const auto a = recordThreads(8);
  EXPECT_EQ(trace_.eventsWithSize(40).size(), 40u);
  EXPECT_EQ(a.stats.unknownFrees, 0u);
  EXPECT_EQ(a.stats.doubleFrees, 0u);
}

}  // namespace
}  // namespace heaptrail::testing
