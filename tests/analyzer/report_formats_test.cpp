// The report formats on synthetic traces with a stand-in symbolizer: exact bytes per
// stack in folded stacks, pprof read back by `go tool pprof`, suppressions, growth
// ranking and memory over time.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "analyzer/report/folded.h"
#include "analyzer/report/html.h"
#include "analyzer/progress_line.h"
#include "analyzer/report/pprof.h"
#include "analyzer/suppressions.h"
#include "tests/analyzer/chromium.h"
#include "tests/analyzer/synthetic_trace.h"
#include "tests/support/run_command.h"

namespace heaptrail::testing {
namespace {

using analyzer::ReportOptions;
using analyzer::report::Metric;
using symbols::SourceFrame;

constexpr uint64_t kBase = 0x555500000000;
constexpr uint32_t kLeak = 1, kInlined = 2, kFreed = 3, kNss = 4;

// Functions at file offsets of a made-up /opt/app: what a symbolizer would say.
symbols::SymbolizedFrame fakeSymbol(uint64_t offset) {
  symbols::SymbolizedFrame s;
  s.status = symbols::FrameStatus::Resolved;
  switch (offset) {
    case 0x100f: s.frames = {{"leak_a", "/src/a.c", 10}}; break;
    case 0x104f: s.frames = {{"inner_b", "/src/b.h", 3}, {"outer_b", "/src/b.c", 20}}; break;
    case 0x108f: s.frames = {{"churn_c", "/src/c.c", 30}}; break;
    case 0x10cf: s.frames = {{"__nss_module_allocate", "nss/nss_module.c", 55}}; break;
    case 0x201f: s.frames = {{"main", "/src/main.c", 5}}; break;
    default: s.status = symbols::FrameStatus::NoSymbols; s.reason = "no symbol";
  }
  return s;
}

const analyzer::FrameResolver kResolver = [](const symbols::ModuleRef&, uint64_t offset) { return fakeSymbol(offset); };

// leak_a: 3 x 100 bytes, one freed; inner_b (inlined into outer_b): 50 bytes; churn_c:
// 10 x 70 bytes all freed; an NSS allocation of 40 bytes kept.
void writeSample(const std::filesystem::path& path) {
  SyntheticTrace t(path);
  t.mapping(0, kBase, kBase + 0x10000, 0, "/opt/app", "\x12\x34");
  t.stack(kLeak, {kBase + 0x1010, kBase + 0x2020});
  t.stack(kInlined, {kBase + 0x1050, kBase + 0x2020});
  t.stack(kFreed, {kBase + 0x1090, kBase + 0x2020});
  t.stack(kNss, {kBase + 0x10d0, kBase + 0x2020});
  t.malloc(1 * kMs, 0x1000, 100, kLeak).malloc(2 * kMs, 0x2000, 100, kLeak).malloc(3 * kMs, 0x3000, 100, kLeak);
  t.free(4 * kMs, 0x2000);
  t.malloc(5 * kMs, 0x4000, 50, kInlined);
  for (uint64_t i = 0; i < 10; ++i) t.malloc((6 + i) * kMs, 0x5000 + i * 0x100, 70, kFreed).free((6 + i) * kMs + 1, 0x5000 + i * 0x100);
  t.malloc(20 * kMs, 0x6000, 40, kNss);
  t.finish(30 * kMs);
}

analyzer::LeakReport sampleReport(const std::filesystem::path& trace, ReportOptions options) {
  options.top = 0;
  return analyze(trace, options, kResolver).report;
}

TEST(ReportFormats, FoldedHasOutstandingBytesPerStackRootFirstWithInlinedFrames) {
  TempDir dir;
  writeSample(dir / "t.htr");
  const auto report = sampleReport(dir / "t.htr", {});
  std::ostringstream out;
  analyzer::report::writeFolded(out, report, Metric::InuseBytes);
  EXPECT_EQ(out.str(),
            "main;__nss_module_allocate 40\n"
            "main;leak_a 200\n"
            "main;outer_b;inner_b 50\n");
  std::ostringstream counts;
  analyzer::report::writeFolded(counts, report, Metric::InuseCount);
  EXPECT_EQ(counts.str(),
            "main;__nss_module_allocate 1\n"
            "main;leak_a 2\n"
            "main;outer_b;inner_b 1\n");
}

TEST(ReportFormats, FoldedAllocationMetricsIncludeStacksWhoseBlocksWereAllFreed) {
  TempDir dir;
  writeSample(dir / "t.htr");
  ReportOptions options;
  options.includeFreedStacks = true;
  options.rankBy = analyzer::RankBy::Allocated;
  const auto report = sampleReport(dir / "t.htr", options);
  std::ostringstream bytes, count;
  analyzer::report::writeFolded(bytes, report, Metric::AllocBytes);
  analyzer::report::writeFolded(count, report, Metric::AllocCount);
  EXPECT_EQ(bytes.str(),
            "main;__nss_module_allocate 40\n"
            "main;churn_c 700\n"
            "main;leak_a 300\n"
            "main;outer_b;inner_b 50\n");
  EXPECT_EQ(count.str(),
            "main;__nss_module_allocate 1\n"
            "main;churn_c 10\n"
            "main;leak_a 3\n"
            "main;outer_b;inner_b 1\n");
}

TEST(ReportFormats, FoldedFramesCannotBreakTheLineFormat) {
  EXPECT_EQ(analyzer::report::foldedFrame("a;b\nc\x1b[31m"), "a:b?c?[31m");
  EXPECT_EQ(analyzer::report::foldedFrame(""), "?");
}

TEST(ReportFormats, DefaultSuppressionsHideNssAndCountIt) {
  TempDir dir;
  writeSample(dir / "t.htr");
  const auto suppressions = analyzer::Suppressions::defaults();
  ReportOptions options;
  options.suppressions = &suppressions;
  const auto report = sampleReport(dir / "t.htr", options);
  ASSERT_EQ(report.leaks.size(), 2u);
  EXPECT_EQ(report.leaks[0].bytes, 200u);
  EXPECT_EQ(report.leaks[1].bytes, 50u);
  EXPECT_TRUE(report.summary.suppressing);
  EXPECT_EQ(report.summary.suppressedGroups, 1u);
  EXPECT_EQ(report.summary.suppressedBytes, 40u);
  ASSERT_EQ(report.summary.suppressionsUsed.size(), 1u);
  EXPECT_EQ(report.summary.suppressionsUsed[0].pattern, "leak:__nss_");
  EXPECT_EQ(report.summary.stackGroups, 2u);
}

TEST(ReportFormats, SuppressionFileMatchesFunctionModuleOrSourceFile) {
  TempDir dir;
  writeSample(dir / "t.htr");
  const auto run = [&](const std::string& text) {
    analyzer::Suppressions s;
    s.add(text, "test.supp");
    ReportOptions options;
    options.suppressions = &s;
    return sampleReport(dir / "t.htr", options);
  };
  const auto byFunction = run("# comment\n\nleak:inner_*\n");
  EXPECT_EQ(byFunction.summary.suppressedBytes, 50u);
  EXPECT_EQ(byFunction.leaks.size(), 2u);
  EXPECT_EQ(run("leak:/src/a.c$\n").summary.suppressedBytes, 200u);
  EXPECT_EQ(run("leak:^/opt/app\n").summary.suppressedBytes, 290u) << "the module matches every stack";
  EXPECT_EQ(run("leak:^leak_a$\n").summary.suppressedBytes, 200u);
  EXPECT_EQ(run("leak:^eak_a\n").summary.suppressedBytes, 0u);
  EXPECT_EQ(run("leak:nothing\n").summary.suppressedGroups, 0u);

  analyzer::Suppressions bad;
  EXPECT_THROW(bad.add("leak:a\nrace:b\n", "x.supp"), analyzer::SuppressionError);
  try {
    bad.add("leak:a\nfun:b\n", "x.supp");
  } catch (const analyzer::SuppressionError& e) {
    EXPECT_STREQ(e.what(), "x.supp:2: expected leak:PATTERN, got 'fun:b'");
  }
  EXPECT_THROW(bad.add("leak:   \n", "x.supp"), analyzer::SuppressionError);
}

TEST(ReportFormats, TemplateMatchFollowsLeakSanitizer) {
  using analyzer::templateMatches;
  EXPECT_TRUE(templateMatches("nss", "__nss_module_allocate"));
  EXPECT_TRUE(templateMatches("^__nss", "__nss_module_allocate"));
  EXPECT_FALSE(templateMatches("^nss", "__nss_module_allocate"));
  EXPECT_TRUE(templateMatches("allocate$", "__nss_module_allocate"));
  EXPECT_FALSE(templateMatches("module$", "__nss_module_allocate"));
  EXPECT_TRUE(templateMatches("__nss*allocate", "__nss_module_allocate"));
  EXPECT_TRUE(templateMatches("^*module*$", "__nss_module_allocate"));
  EXPECT_TRUE(templateMatches("^a*b*c$", "aXbYc"));
  EXPECT_FALSE(templateMatches("^a*b*c$", "aXbYcd"));
  EXPECT_FALSE(templateMatches("", "x"));
}

// The matcher remembers each text's first matching rule: its answers are the rule list's,
// the first rule that any frame matches, however often a text comes back.
TEST(ReportFormats, SuppressionMatcherGivesTheFirstMatchingRuleOfAnyFrame) {
  analyzer::Suppressions rules;
  rules.add("leak:outer_*\nleak:/src/b.h$\nleak:^inner_b$\nleak:^/opt/app\n", "test.supp");
  const auto frame = [](const char* module, std::vector<SourceFrame> functions) {
    analyzer::Frame f;
    f.mapped = true;
    f.module = module;
    f.symbolized = true;
    f.symbol.status = symbols::FrameStatus::Resolved;
    f.symbol.frames = std::move(functions);
    return f;
  };
  analyzer::StackReport inlined;
  inlined.frames = {frame("/lib/x", {{"inner_b", "/src/b.h", 3}, {"outer_b", "/src/b.c", 20}})};
  analyzer::StackReport innerOnly;
  innerOnly.frames = {frame("/lib/x", {{"inner_b", "/src/c.h", 3}})};
  analyzer::StackReport moduleOnly;
  moduleOnly.frames = {frame("/lib/x", {{"f", "/src/f.c", 1}}), frame("/opt/app", {{"main", "/src/main.c", 5}})};
  analyzer::StackReport none;
  none.frames = {frame("/lib/x", {{"f", "/src/f.c", 1}})};
  analyzer::SuppressionMatcher matcher(rules);
  for (int round = 0; round < 2; ++round) {
    for (const auto* stack : {&inlined, &innerOnly, &moduleOnly, &none}) EXPECT_EQ(matcher.match(*stack), rules.match(*stack));
    EXPECT_EQ(matcher.match(inlined), std::optional<size_t>(0));
    EXPECT_EQ(matcher.match(innerOnly), std::optional<size_t>(2));
    EXPECT_EQ(matcher.match(moduleOnly), std::optional<size_t>(3));
    EXPECT_EQ(matcher.match(none), std::nullopt);
  }
}

// A leak that grows by 1000 bytes in each of 40 seconds, and a cache that takes 100000
// bytes in its first second and keeps them: by bytes the cache comes first, by growth the
// leak.
TEST(ReportFormats, GrowthRanksTheSteadyLeakBeforeTheCacheThatFilledOnce) {
  TempDir dir;
  const auto path = dir / "g.htr";
  {
    SyntheticTrace t(path);
    t.stack(1, {0x401000});
    t.stack(2, {0x402000});
    for (uint64_t i = 0; i < 200; ++i) t.malloc(i * 5 * kMs, 0x100000 + i * 0x1000, 500, 2);
    for (uint64_t s = 0; s < 40; ++s) {
      t.malloc(s * kSec + 500 * kMs, 0x900000 + s * 0x1000, 1000, 1);
      if (s % 5 == 0) t.flush();
    }
    t.finish(40 * kSec);
  }
  ReportOptions options;
  const auto bytes = analyze(path, options).report;
  ASSERT_EQ(bytes.leaks.size(), 2u);
  EXPECT_EQ(bytes.leaks[0].stack.stackId, 2u);
  options.rankBy = analyzer::RankBy::Growth;
  const auto growth = analyze(path, options).report;
  ASSERT_EQ(growth.leaks.size(), 2u);
  EXPECT_EQ(growth.leaks[0].stack.stackId, 1u);
  EXPECT_EQ(growth.summary.rankedBy, "growth");
  const auto& leak = growth.leaks[0].growth;
  EXPECT_EQ(leak.windows, 20u) << "40 s in windows doubled from 1 ms up to 32 windows: 2.048 s wide";
  EXPECT_EQ(leak.windowNs, 2048 * kMs);
  EXPECT_GE(leak.grownWindows, 19u);
  EXPECT_NEAR(leak.bytesPerSecond, 1000, 60);
  const auto& cache = growth.leaks[1].growth;
  EXPECT_EQ(cache.grownWindows, 1u);
  EXPECT_LT(cache.score, leak.score / 5);
}

TEST(ReportFormats, TimelineHasOutstandingBytesAndAllocationRatePerWindow) {
  TempDir dir;
  writeSample(dir / "t.htr");
  ReportOptions options;
  options.timeline = true;
  const auto report = sampleReport(dir / "t.htr", options);
  ASSERT_EQ(report.timelines.size(), 1u);
  const auto& t = report.timelines[0];
  EXPECT_EQ(t.pid, kPid);
  EXPECT_EQ(t.windowNs, kMs);
  ASSERT_EQ(t.windows.size(), 30u);
  EXPECT_EQ(t.windows[1].endBytes, 100u);
  EXPECT_EQ(t.windows[3].endBytes, 300u);
  EXPECT_EQ(t.windows[3].allocations, 1u);
  EXPECT_EQ(t.windows[4].endBytes, 200u) << "a free";
  EXPECT_EQ(t.windows[4].peakBytes, 300u) << "the window starts where the last ended";
  EXPECT_EQ(t.windows[6].peakBytes, 320u) << "70 bytes allocated then freed on top of 250";
  EXPECT_EQ(t.windows[6].endBytes, 250u);
  EXPECT_EQ(t.windows[29].endBytes, 290u);
  uint64_t allocated = 0;
  for (const auto& w : t.windows) allocated += w.allocatedBytes;
  EXPECT_EQ(allocated, 300u + 50 + 700 + 40);
}

// Reads a pprof file back with the real consumer.
std::string goPprof(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/go", "tool", "pprof"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = runCommand(argv);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  return r.out;
}

bool haveGo() { return ::access("/usr/bin/go", X_OK) == 0; }

// `go tool pprof -top` lines: flat flat% sum% cum cum% name (units as asked with -unit).
std::map<std::string, std::pair<long long, long long>> topTable(const std::string& text) {
  std::map<std::string, std::pair<long long, long long>> rows;
  std::istringstream in(text);
  std::string line;
  bool table = false;
  while (std::getline(in, line)) {
    if (line.find("flat%") != std::string::npos) {
      table = true;
      continue;
    }
    if (!table) continue;
    std::istringstream fields(line);
    std::string flat, flatPct, sumPct, cum, cumPct, name;
    if (!(fields >> flat >> flatPct >> sumPct >> cum >> cumPct)) continue;
    std::getline(fields >> std::ws, name);
    if (const auto inl = name.rfind(" (inline)"); inl != std::string::npos) name.resize(inl);
    const auto number = [](std::string v) {
      while (!v.empty() && !std::isdigit(static_cast<unsigned char>(v.back()))) v.pop_back();
      return std::stoll(v);
    };
    rows[name] = {number(flat), number(cum)};
  }
  return rows;
}

TEST(ReportFormats, PprofReadsBackInGoToolPprofWithHeapSampleTypes) {
  if (!haveGo()) GTEST_SKIP() << "go (Debian golang-go) is not installed: tools/setup.sh installs it";
  TempDir dir;
  writeSample(dir / "t.htr");
  ReportOptions options;
  options.includeFreedStacks = true;
  const auto report = sampleReport(dir / "t.htr", options);
  const auto file = dir / "t.pb.gz";
  {
    std::ofstream out(file, std::ios::binary);
    analyzer::report::writePprof(out, report);
  }
  const std::string raw = goPprof({"-raw", file.string()});
  EXPECT_NE(raw.find("alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes[dflt]"),
            std::string::npos) << raw;
  EXPECT_NE(raw.find("/opt/app 1234 [FN][FL][LN][IN]"), std::string::npos) << "the mapping with its build-id\n" << raw;

  const std::string top = goPprof({"-top", "-unit=B", "-nodecount=100", file.string()});
  const auto inuse = topTable(top);
  EXPECT_EQ(inuse.at("leak_a"), std::make_pair(200LL, 200LL));
  EXPECT_EQ(inuse.at("inner_b"), std::make_pair(50LL, 50LL)) << top;
  EXPECT_EQ(inuse.at("outer_b"), std::make_pair(0LL, 50LL)) << "inlined frames are lines of one location";
  EXPECT_EQ(inuse.at("main"), std::make_pair(0LL, 290LL));
  EXPECT_EQ(inuse.count("churn_c"), 0u);
  const auto allocated = topTable(goPprof({"-top", "-unit=B", "-nodecount=100", "-sample_index=alloc_space", file.string()}));
  EXPECT_EQ(allocated.at("churn_c"), std::make_pair(700LL, 700LL));
  EXPECT_EQ(allocated.at("leak_a"), std::make_pair(300LL, 300LL));
  EXPECT_EQ(allocated.at("main"), std::make_pair(0LL, 1090LL));
  const auto objects = topTable(goPprof({"-top", "-nodecount=100", "-sample_index=alloc_objects", file.string()}));
  EXPECT_EQ(objects.at("churn_c"), std::make_pair(10LL, 10LL));
  // File and line of each function, inlined ones included.
  const std::string lines = goPprof({"-traces", "-lines", file.string()});
  EXPECT_NE(lines.find("inner_b /src/b.h:3"), std::string::npos) << lines;
  EXPECT_NE(lines.find("outer_b /src/b.c:20"), std::string::npos) << lines;
}

TEST(ReportFormats, HtmlEscapeKeepsTextAsTextOnce) {
  using analyzer::report::htmlEscape;
  EXPECT_EQ(htmlEscape("a&amp;<b>\"'"), "a&amp;amp;&lt;b&gt;&quot;&#39;");
  EXPECT_EQ(htmlEscape("ok \xc3\xa9 \xff\x1b["), "ok \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd[");
  EXPECT_EQ(htmlEscape("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") << "a surrogate is not UTF-8";
}

// Function names, module paths and files from a trace are markup and script attempts: in
// Chromium they stay text, the page's own scripts run without errors, nothing injected runs.
TEST(ReportFormats, HtmlFromAHostileTraceRendersInChromiumWithoutInjection) {
  if (!haveChromium()) GTEST_SKIP() << "chromium is not installed: tools/setup.sh installs it";
  TempDir dir;
  const auto trace = dir / "t.htr";
  const std::string evilModule = "/opt/<img src=x onerror=\"document.title='pwned'\">.so";
  {
    SyntheticTrace t(trace);
    t.mapping(0, kBase, kBase + 0x10000, 0, evilModule);
    t.stack(1, {kBase + 0x1010, kBase + 0x2020});
    t.stack(2, {kBase + 0x3010, kBase + 0x2020});
    t.malloc(1 * kMs, 0x1000, 1234, 1).malloc(2 * kMs, 0x2000, 777, 2);
    t.finish(10 * kMs);
  }
  const analyzer::FrameResolver resolver = [](const symbols::ModuleRef&, uint64_t offset) {
    symbols::SymbolizedFrame s;
    s.status = symbols::FrameStatus::Resolved;
    if (offset == 0x100f)
      s.frames = {{"</script><script>document.title='pwned'</script>", "/src/<b>bold</b>.c", 7}};
    else if (offset == 0x201f)
      s.frames = {{"a&amp;b", "/src/main.c", 3}};
    else
      s.status = symbols::FrameStatus::NoSymbols;
    return s;
  };
  ReportOptions options;
  options.top = 0;
  options.includeFreedStacks = true;
  options.timeline = true;
  auto report = analyze(trace, options, resolver).report;
  report.summary.trace = "<script>document.title='pwned'</script>.htr";
  report.warnings.push_back("the recorder lost 3 events <i>x</i>");
  const auto html = dir / "r.html";
  {
    std::ofstream out(html);
    analyzer::report::writeHtml(out, report);
  }
  const auto r = chromiumDom(html, dir / "profile");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const std::string& dom = r.out;
  EXPECT_NE(dom.find("data-rendered=\"yes\""), std::string::npos) << "the page's scripts ran to the end\n" << dom;
  EXPECT_EQ(dom.find("data-script-errors"), std::string::npos) << dom;
  EXPECT_EQ(dom.find("pwned</title>"), std::string::npos) << "no injected script ran";
  EXPECT_EQ(dom.find("<img"), std::string::npos) << "no injected element";
  EXPECT_EQ(dom.find("<b>bold"), std::string::npos);
  EXPECT_EQ(dom.find("<i>x</i>"), std::string::npos);
  EXPECT_NE(dom.find("&lt;/script&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;"), std::string::npos)
      << "the name shows as text\n" << dom;
  EXPECT_NE(dom.find(">a&amp;amp;b<"), std::string::npos) << "escaped once: the text reads a&amp;b";
  EXPECT_EQ(dom.find("a&amp;amp;amp;b"), std::string::npos) << "not twice";
  EXPECT_NE(dom.find("WARNING: the recorder lost 3 events &lt;i&gt;x&lt;/i&gt;"), std::string::npos);
  // The flame graph drew the functions with their bytes (names as attribute text).
  EXPECT_NE(dom.find("data-name=\"a&amp;amp;b\" data-value=\"2011\""), std::string::npos) << dom;
  EXPECT_NE(dom.find("data-value=\"1234\""), std::string::npos);
  EXPECT_NE(dom.find("class=\"outstanding\""), std::string::npos) << "memory over time drawn";
}

TEST(ReportFormats, ProgressLineAppearsAfterASecondAndIsErasedWhenDone) {
  using namespace std::chrono;
  steady_clock::time_point now{};
  const auto clock = [&] { return now; };
  std::ostringstream err;
  {
    analyzer::ProgressLine line(err, "heaptrail: reading t.htr", true, clock);
    now += milliseconds(500);
    line.update(1 << 20, 4 << 20, 1000);
    EXPECT_EQ(err.str(), "") << "nothing for work shorter than a second";
    now += milliseconds(1500);
    line.update(2 << 20, 4 << 20, 4000);
    EXPECT_EQ(err.str(), "\r\x1b[Kheaptrail: reading t.htr: 2.0 MiB of 4.0 MiB (50%), 4000 events, 2000 events/s");
    now += milliseconds(100);
    line.update(3 << 20, 4 << 20, 5000);
    EXPECT_EQ(err.str().find("75%"), std::string::npos) << "redrawn at most 4 times a second";
  }
  EXPECT_TRUE(err.str().size() > 4 && err.str().substr(err.str().size() - 4) == "\r\x1b[K") << "erased at the end";
  std::ostringstream quiet;
  {
    analyzer::ProgressLine line(quiet, "x", false, clock);
    now += seconds(5);
    line.update(1, 2, 3);
  }
  EXPECT_EQ(quiet.str(), "");
}

}  // namespace
}  // namespace heaptrail::testing
