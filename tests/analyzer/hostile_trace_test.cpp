// Traces arrive as bug attachments from strangers: what a crafted trace can make the
// analyzer print. Built with the project's own writer (synthetic_trace.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/support/analyzer_cli.h"
#include "tests/analyzer/synthetic_trace.h"

namespace heaptrail::testing {
namespace {

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
  const auto info = runHeaptrail({"info", (dir / "t.htr").string()});
  EXPECT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("lost events:      18446744073709551615"), std::string::npos) << info.out;
  const auto text = runHeaptrail({"analyze", (dir / "t.htr").string(), "--no-symbols"});
  EXPECT_NE(text.out.find("lost events:          18446744073709551615"), std::string::npos) << text.out;
}

// Text from a trace that would drive a terminal: a newline forging a report line, CSI
// colours, an OSC window title, a screen clear, C1 CSI both as UTF-8 (U+009B) and as a
// raw byte.
const std::string kHostile[] = {
    "\nstatus:           complete\n",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;pwned title\x07",
    "\x1b[2J\x1b[H",
    "\xc2\x9b" "31m",
    "\x9b" "2J",
    "tab\there\rcarriage",
};

std::string allHostile() {
  std::string all;
  for (const auto& h : kHostile) all += h;
  return all;
}

// A trace whose every text field carries the sequences above.
void writeHostileTrace(const std::filesystem::path& path) {
  schema::TraceWriter writer(path);
  SyntheticHeader spec;
  spec.commandLine = {"./app" + allHostile(), allHostile()};
  spec.kernelRelease = "6.1" + allHostile();
  spec.recorderVersion = "v" + allHostile();
  writer.writeHeader([&](schema::Header::Builder h) {
    fillSyntheticHeader(h, spec);
    h.setHostname("box" + allHostile());
    h.getOptions().setAllocatorObject("/lib/libc.so" + allHostile());
    h.getOptions().initProbedFunctions(1).set(0, "malloc" + allHostile());
  });
  schema::ChunkBuilder chunk;
  chunk.addMapping({kStart + kMs, kPid, 0x400000, 0x401000, 0, "/lib/evil.so" + allHostile(), "", 
                    schema::MappingSource::MMAP_EVENT, true, 0});
  schema::ProcessRecord exec;
  exec.timeNs = kStart + kMs;
  exec.pid = kPid;
  exec.kind = schema::ProcessEventKind::EXEC;
  exec.command = "app" + allHostile();
  chunk.addProcessEvent(exec);
  chunk.addStack(1, std::vector<uint64_t>{0x400100});
  chunk.addEvent({EventKind::MALLOC, kStart + 2 * kMs, kPid, kPid, 0x1000, 100, 1, 0});
  writer.writeChunk(chunk);
  writer.writeFooter([&](schema::Footer::Builder f) {
    f.setEndTimeNs(kStart + 10 * kMs);
    f.setEndReason(schema::EndReason::ERROR);
    f.setErrorMessage("disk full" + allHostile());
  });
}

// Nothing that drives a terminal: the text is valid UTF-8 with no control character
// but the line ends (no C0, no ESC, no DEL, no C1 whether raw or encoded).
void expectInert(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    uint32_t cp = c;
    size_t n = 1;
    if (c >= 0x80) {
      n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
      ASSERT_NE(n, 0u) << "not UTF-8 (a raw byte " << int(c) << ") at " << i << " in:\n" << text;
      ASSERT_LE(i + n, text.size());
      cp = c & (0x7f >> n);
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
    }
    ASSERT_FALSE((cp < 0x20 && cp != '\n') || (cp >= 0x7f && cp <= 0x9f))
        << "control character U+" << std::hex << cp << " at " << std::dec << i << " in:\n" << text;
    i += n;
  }
}

size_t linesStartingWith(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  for (size_t at = 0; at < text.size();) {
    if (text.compare(at, prefix.size(), prefix) == 0) ++n;
    const size_t end = text.find('\n', at);
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return n;
}

TEST(HostileTrace, InfoPrintsNoControlSequences) {
  TempDir dir;
  writeHostileTrace(dir / "t.htr");
  const auto info = runHeaptrail({"info", (dir / "t.htr").string()});
  ASSERT_EQ(info.code, 0) << info.err;
  expectInert(info.out);
  EXPECT_EQ(linesStartingWith(info.out, "status:"), 1u) << "a line was forged:\n" << info.out;
  // Escaped, still readable.
  EXPECT_NE(info.out.find("/lib/evil.so\\nstatus:"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("\\e[31mred"), std::string::npos);
  EXPECT_NE(info.out.find("\\e]0;pwned title\\x07"), std::string::npos);
  EXPECT_NE(info.out.find("\\x9b31m"), std::string::npos);
  EXPECT_NE(info.out.find("\\x9b2J"), std::string::npos);
}

TEST(HostileTrace, TextAnalyzePrintsNoControlSequences) {
  TempDir dir;
  writeHostileTrace(dir / "t.htr");
  const auto text = runHeaptrail({"analyze", (dir / "t.htr").string(), "--no-symbols"});
  ASSERT_EQ(text.code, 0) << text.err;
  expectInert(text.out);
  expectInert(text.err);
  // The command line and the leaking frame (module name) are shown, escaped.
  EXPECT_NE(text.out.find("./app\\nstatus:"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("evil.so\\nstatus:"), std::string::npos) << text.out;
  EXPECT_EQ(linesStartingWith(text.out, "status:"), 0u) << "a line was forged:\n" << text.out;
}

}  // namespace
}  // namespace heaptrail::testing
