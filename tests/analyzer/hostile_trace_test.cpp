// Traces arrive as bug attachments from strangers: what a crafted trace can make the
// analyzer print. Built with the project's own writer (synthetic_trace.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/analyzer/synthetic_trace.h"

namespace heaptrail::testing {
namespace {

struct Output {
  int code = -1;
  std::string out, err;
};

Output run(std::vector<std::string> args) {
  std::ostringstream out, err;
  Output o;
  o.code = analyzer::heaptrailMain(args, out, err);
  o.out = out.str();
  o.err = err.str();
  return o;
}

// Lost-event counts are summed over chunks and kinds: a crafted trace must not make the
// total wrap around to "none".
TEST(HostileTrace, LostEventTotalsDoNotWrap) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 16, 1).lost(EventKind::MALLOC, 1ull << 63).flush();
  t.lost(EventKind::FREE, 1ull << 63).flush();
  t.lost(EventKind::FREE, 1ull << 63).flush();
  t.abandon();
  const auto a = analyze(dir / "t.htr");
  EXPECT_EQ(a.stats.lostByKind[static_cast<size_t>(EventKind::FREE)], UINT64_MAX);
  EXPECT_EQ(a.report.summary.lostTotal, UINT64_MAX);
  const auto info = run({"info", (dir / "t.htr").string()});
  EXPECT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("lost events:      18446744073709551615"), std::string::npos) << info.out;
  const auto text = run({"analyze", (dir / "t.htr").string(), "--no-symbols"});
  EXPECT_NE(text.out.find("lost events:          18446744073709551615"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace heaptrail::testing
