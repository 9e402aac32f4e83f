// The `heaptrail` command line: exit codes, one-line errors naming the file, help,
// JSON that parses back with the documented fields, and `info`.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "analyzer/cli.h"
#include "analyzer/json_output.h"
#include "tests/analyzer/json_value.h"
#include "tests/analyzer/synthetic_trace.h"

namespace heaptrail::testing {
namespace {

struct CliResult {
  int code = -1;
  std::string out, err;
};

CliResult run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  CliResult r;
  r.code = analyzer::heaptrailMain(args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// Runs the real binary through the shell; returns its exit status, stderr in `err`.
int runBinary(const std::string& args, std::string* err = nullptr, const TempDir* dir = nullptr) {
  TempDir own;
  const auto errPath = (dir ? *dir : own) / "stderr.txt";
  const int status = std::system((std::string(HEAPTRAIL_BIN) + " " + args + " >/dev/null 2>" + errPath.string()).c_str());
  if (err) {
    std::ifstream in(errPath);
    *err = {std::istreambuf_iterator<char>(in), {}};
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

size_t lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

void writeLeakyTrace(const std::filesystem::path& path, const std::string& modulePath = "/opt/app/bin/app") {
  SyntheticTrace t(path);
  t.mapping(0, 0x400000, 0x402000, 0x1000, modulePath, "\x01\x02\xfe");
  t.stack(1, {0x400123, 0x7fff0000}).stack(2, {0x400456});
  t.malloc(1 * kMs, 0x1000, 1000, 1).malloc(2 * kMs, 0x2000, 24, 2).malloc(3 * kMs, 0x3000, 1000, 1);
  t.malloc(4 * kMs, 0x4000, 8, 2).free(5 * kMs, 0x4000).free(6 * kMs, 0x4000).free(7 * kMs, 0x9999);
  t.lost(EventKind::FREE, 4);
  t.finish(10 * kMs, {{EventKind::FREE, 4}});
}

TEST(Cli, UsageErrorsExit2WithOneLine) {
  TempDir dir;
  writeLeakyTrace(dir / "t.htr");
  const std::string trace = (dir / "t.htr").string();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {"frobnicate"},
           {"analyze"},
           {"analyze", trace, trace},
           {"analyze", trace, "--bogus"},
           {"analyze", trace, "--since", "soon"},
           {"analyze", trace, "--at", "-5s"},
           {"analyze", trace, "--top", "-1"},
           {"analyze", trace, "--top", "ten"},
           {"analyze", trace, "--min-bytes", "lots"},
           {"analyze", trace, "--format", "xml"},
           {"info"},
           {"info", trace, "--bogus"},
       }) {
    const auto r = run(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined;
    EXPECT_EQ(lines(r.err), 1u) << joined << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << joined;
  }
}

TEST(Cli, MissingOrNonTraceFileExits1NamingIt) {
  TempDir dir;
  const std::string missing = (dir / "missing.htr").string();
  auto r = run({"analyze", missing});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;

  std::ofstream(dir / "notes.txt") << "hello, not a trace\n";
  const std::string notTrace = (dir / "notes.txt").string();
  for (const char* command : {"analyze", "info"}) {
    r = run({command, notTrace});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(notTrace), std::string::npos) << r.err;
  }

  std::ofstream(dir / "empty.htr").flush();
  r = run({"info", (dir / "empty.htr").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("empty.htr"), std::string::npos) << r.err;

  writeLeakyTrace(dir / "t.htr");
  r = run({"analyze", (dir / "t.htr").string(), "--sysroot", (dir / "nope").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1u);
  EXPECT_NE(r.err.find((dir / "nope").string()), std::string::npos) << r.err;
}

TEST(Cli, TheBinaryExitsWithTheSameCodes) {
  TempDir dir;
  std::string err;
  EXPECT_EQ(runBinary("analyze " + (dir / "missing.htr").string(), &err, &dir), 1);
  EXPECT_EQ(lines(err), 1u) << err;
  EXPECT_NE(err.find("missing.htr"), std::string::npos) << err;
  EXPECT_EQ(runBinary("analyze --top x y"), 2);
  EXPECT_EQ(runBinary(""), 2);
  EXPECT_EQ(runBinary("--help"), 0);
  writeLeakyTrace(dir / "t.htr");
  EXPECT_EQ(runBinary("analyze --no-symbols " + (dir / "t.htr").string()), 0);
  EXPECT_EQ(runBinary("info " + (dir / "t.htr").string()), 0);
}

TEST(Cli, HelpHasExamples) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"analyze", "--help"}, {"info", "--help"}, {"help", "analyze"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("Usage: heaptrail"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << r.out;
  }
  const auto r = run({"analyze", "--help"});
  for (const char* option : {"--since", "--at", "--top", "--min-bytes", "--format", "--sysroot", "--debug-dir", "--no-symbols"})
    EXPECT_NE(r.out.find(option), std::string::npos) << option;
}

TEST(Cli, TextReport) {
  TempDir dir;
  writeLeakyTrace(dir / "t.htr");
  const auto r = run({"analyze", "--no-symbols", (dir / "t.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("WARNING: the recorder lost 4 events (free: 4)", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("2000 bytes in 2 allocations from stack (oldest 9.0 ms, youngest 7.0 ms)\n"
                       "    #0 app+0x1123\n"
                       "    #1 0x7fff0000 (no mapping)\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("24 bytes in 1 allocation from stack (oldest 8.0 ms, youngest 8.0 ms)\n    #0 app+0x1456\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("frees of unknown addresses: 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("double frees:         1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak outstanding:     2032 bytes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 double free of a 8-byte block (first at 6.0 ms) allocated at\n    #0 app+0x1456\n"),
            std::string::npos)
      << r.out;
}

void expectFrameFields(const JsonValue& frame) {
  for (const char* key : {"address", "module", "build_id", "offset", "function", "file", "line"})
    EXPECT_TRUE(frame.has(key)) << key;
}

TEST(Cli, JsonIsValidAndHasTheDocumentedFields) {
  TempDir dir;
  // A path with characters JSON must escape.
  writeLeakyTrace(dir / "t.htr", "/opt/we\"ird\\dir\n/app\x01\xff");
  const auto r = run({"analyze", "--no-symbols", "--format", "json", (dir / "t.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: the recorder lost 4 events"), std::string::npos) << r.err;
  JsonValue doc;
  ASSERT_NO_THROW(doc = JsonParser::parse(r.out)) << r.out;

  const auto& s = doc["summary"];
  EXPECT_EQ(s["trace"].str(), (dir / "t.htr").string());
  EXPECT_EQ(s["target_pid"].u64(), kPid);
  EXPECT_EQ(s["target_command"][1].str(), "--flag");
  EXPECT_EQ(s["status"].str(), "complete");
  EXPECT_TRUE(s["problem"].isNull());
  EXPECT_TRUE(s["at_ns"].isNull());
  EXPECT_EQ(s["analysis_ns"].u64(), 10 * kMs);
  EXPECT_EQ(s["events"].u64(), 7u);
  EXPECT_EQ(s["allocations"].u64(), 4u);
  EXPECT_EQ(s["frees"].u64(), 3u);
  EXPECT_EQ(s["bytes_allocated"].u64(), 2032u);
  EXPECT_EQ(s["peak_outstanding_bytes"].u64(), 2032u);
  EXPECT_EQ(s["peak_ns"].u64(), 4 * kMs);
  EXPECT_EQ(s["outstanding_bytes"].u64(), 2024u);
  EXPECT_EQ(s["outstanding_allocations"].u64(), 3u);
  EXPECT_EQ(s["unknown_frees"].u64(), 1u);
  EXPECT_EQ(s["double_frees"].u64(), 1u);
  EXPECT_EQ(s["lost_events"]["free"].u64(), 4u);
  EXPECT_EQ(s["lost_total"].u64(), 4u);
  ASSERT_EQ(s["warnings"].array().size(), 1u);

  const auto& leaks = doc["leaks"].array();
  ASSERT_EQ(leaks.size(), 2u);
  EXPECT_EQ(leaks[0]["bytes"].u64(), 2000u);
  EXPECT_EQ(leaks[0]["count"].u64(), 2u);
  EXPECT_EQ(leaks[0]["oldest_ns"].u64(), 9 * kMs);
  EXPECT_EQ(leaks[0]["youngest_ns"].u64(), 7 * kMs);
  const auto& frames = leaks[0]["frames"].array();
  ASSERT_EQ(frames.size(), 2u);
  for (const auto& f : frames) expectFrameFields(f);
  EXPECT_EQ(frames[0]["address"].str(), "0x400123");
  EXPECT_EQ(frames[0]["module"].str(), "/opt/we\"ird\\dir\n/app\x01\xef\xbf\xbd");
  EXPECT_EQ(frames[0]["build_id"].str(), "0102fe");
  EXPECT_EQ(frames[0]["offset"].u64(), 0x1123u);
  EXPECT_TRUE(frames[0]["function"].isNull());
  EXPECT_TRUE(frames[0]["file"].isNull());
  EXPECT_TRUE(frames[0]["line"].isNull());
  EXPECT_TRUE(frames[1]["module"].isNull());
  EXPECT_TRUE(frames[1]["offset"].isNull());
  EXPECT_EQ(leaks[1]["bytes"].u64(), 24u);

  const auto& doubles = doc["double_frees"].array();
  ASSERT_EQ(doubles.size(), 1u);
  EXPECT_EQ(doubles[0]["count"].u64(), 1u);
  EXPECT_EQ(doubles[0]["bytes"].u64(), 8u);
  EXPECT_EQ(doubles[0]["first_ns"].u64(), 6 * kMs);
  expectFrameFields(doubles[0]["frames"][0]);

  // An independent parser agrees that it is JSON.
  if (std::system("python3 -c 'pass' >/dev/null 2>&1") == 0) {
    std::ofstream(dir / "out.json") << r.out;
    EXPECT_EQ(std::system(("python3 -m json.tool " + (dir / "out.json").string() + " >/dev/null").c_str()), 0);
  }
}

TEST(Cli, JsonOptionsAreReflected) {
  TempDir dir;
  writeLeakyTrace(dir / "t.htr");
  const auto r = run({"analyze", "--no-symbols", "-f", "json", "--at", "5ms", "--since", "2ms", "--top", "1",
                      "--min-bytes", "1k", (dir / "t.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const JsonValue doc = JsonParser::parse(r.out);
  const auto& s = doc["summary"];
  EXPECT_EQ(s["at_ns"].u64(), 5 * kMs);
  EXPECT_EQ(s["since_ns"].u64(), 2 * kMs);
  EXPECT_EQ(s["min_bytes"].u64(), 1024u);
  EXPECT_EQ(s["top"].u64(), 1u);
  ASSERT_EQ(doc["leaks"].array().size(), 1u);
  EXPECT_EQ(doc["leaks"][0]["bytes"].u64(), 2000u);
  EXPECT_EQ(doc["leaks"][0]["youngest_ns"].u64(), 2 * kMs);
}

TEST(Cli, JsonStringEscaping) {
  EXPECT_EQ(analyzer::jsonString("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  EXPECT_EQ(analyzer::jsonString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(analyzer::jsonString("\xc3"), "\"\\ufffd\"");
  EXPECT_EQ(analyzer::jsonString("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate
}

TEST(Cli, InfoDescribesTheTrace) {
  TempDir dir;
  writeLeakyTrace(dir / "t.htr");
  auto r = run({"info", (dir / "t.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* expected : {"target:           pid 4242 (started by the recorder): ./app --flag\n",
                               "host:             box, kernel 6.1.0-test, x86_64, page size 4096\n",
                               "started:          2023-11-14 22:13:20.000 UTC", "duration:         10.0 ms\n",
                               "status:           complete\n", "end reason:       every target exited\n",
                               "events:           7\n", "  malloc: 4\n", "  free: 3\n", "stacks:           2\n",
                               "lost events:      4 (WARNING", "  free: 4\n",
                               "  pid 4242 0x400000-0x402000 offset 0x1000 /opt/app/bin/app build-id 0102fe (mmap, +0.0 us)\n"})
    EXPECT_NE(r.out.find(expected), std::string::npos) << expected << "\n" << r.out;

  {
    SyntheticTrace t(dir / "cut.htr");
    t.malloc(1 * kMs, 0x1000, 1, 1).flush();
    t.abandon();
  }
  r = run({"info", (dir / "cut.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("status:           TRUNCATED: file ends after chunk 1 without a footer"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace heaptrail::testing
