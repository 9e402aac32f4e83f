// The `heaptrail` command line: exit codes, one-line errors naming the file, help,
// JSON that parses back with the documented fields, and `info`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/support/analyzer_cli.h"
#include "tests/analyzer/synthetic_trace.h"

namespace heaptrail::testing {
namespace {

using Json = nlohmann::json;

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
    const auto r = runHeaptrail(args);
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
  auto r = runHeaptrail({"analyze", missing});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;

  std::ofstream(dir / "notes.txt") << "hello, not a trace\n";
  const std::string notTrace = (dir / "notes.txt").string();
  for (const char* command : {"analyze", "info"}) {
    r = runHeaptrail({command, notTrace});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(notTrace), std::string::npos) << r.err;
  }

  std::ofstream(dir / "empty.htr").flush();
  r = runHeaptrail({"info", (dir / "empty.htr").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("empty.htr"), std::string::npos) << r.err;

  writeLeakyTrace(dir / "t.htr");
  r = runHeaptrail({"analyze", (dir / "t.htr").string(), "--sysroot", (dir / "nope").string()});
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
    const auto r = runHeaptrail(args);
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("Usage: heaptrail"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << r.out;
  }
  const auto r = runHeaptrail({"analyze", "--help"});
  for (const char* option : {"--since", "--at", "--top", "--min-bytes", "--format", "--sysroot", "--debug-dir", "--no-symbols"})
    EXPECT_NE(r.out.find(option), std::string::npos) << option;
}

TEST(Cli, TextReport) {
  TempDir dir;
  writeLeakyTrace(dir / "t.htr");
  const auto r = runHeaptrail({"analyze", "--no-symbols", (dir / "t.htr").string()});
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

void expectFrameFields(const Json& frame) {
  for (const char* key : {"address", "module", "build_id", "offset", "function", "file", "line"})
    EXPECT_TRUE(frame.contains(key)) << key;
}

TEST(Cli, JsonIsValidAndHasTheDocumentedFields) {
  TempDir dir;
  // A path with characters JSON must escape.
  writeLeakyTrace(dir / "t.htr", "/opt/we\"ird\\dir\n/app\x01\xff");
  const auto r = runHeaptrail({"analyze", "--no-symbols", "--format", "json", (dir / "t.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: the recorder lost 4 events"), std::string::npos) << r.err;
  Json doc;
  ASSERT_NO_THROW(doc = Json::parse(r.out)) << r.out;

  const auto& s = doc.at("summary");
  EXPECT_EQ(s.at("trace").get<std::string>(), (dir / "t.htr").string());
  EXPECT_EQ(s.at("target_pid").get<uint64_t>(), kPid);
  EXPECT_EQ(s.at("target_command").at(1).get<std::string>(), "--flag");
  EXPECT_EQ(s.at("status").get<std::string>(), "complete");
  EXPECT_TRUE(s.at("problem").is_null());
  EXPECT_TRUE(s.at("at_ns").is_null());
  EXPECT_EQ(s.at("analysis_ns").get<uint64_t>(), 10 * kMs);
  EXPECT_EQ(s.at("events").get<uint64_t>(), 7u);
  EXPECT_EQ(s.at("allocations").get<uint64_t>(), 4u);
  EXPECT_EQ(s.at("frees").get<uint64_t>(), 3u);
  EXPECT_EQ(s.at("bytes_allocated").get<uint64_t>(), 2032u);
  EXPECT_EQ(s.at("peak_outstanding_bytes").get<uint64_t>(), 2032u);
  EXPECT_EQ(s.at("peak_ns").get<uint64_t>(), 4 * kMs);
  EXPECT_EQ(s.at("outstanding_bytes").get<uint64_t>(), 2024u);
  EXPECT_EQ(s.at("outstanding_allocations").get<uint64_t>(), 3u);
  EXPECT_EQ(s.at("unknown_frees").get<uint64_t>(), 1u);
  EXPECT_EQ(s.at("double_frees").get<uint64_t>(), 1u);
  EXPECT_EQ(s.at("lost_events").at("free").get<uint64_t>(), 4u);
  EXPECT_EQ(s.at("lost_total").get<uint64_t>(), 4u);
  ASSERT_EQ(s.at("warnings").size(), 1u);

  const auto& leaks = doc.at("leaks");
  ASSERT_EQ(leaks.size(), 2u);
  EXPECT_EQ(leaks.at(0).at("bytes").get<uint64_t>(), 2000u);
  EXPECT_EQ(leaks.at(0).at("count").get<uint64_t>(), 2u);
  EXPECT_EQ(leaks.at(0).at("oldest_ns").get<uint64_t>(), 9 * kMs);
  EXPECT_EQ(leaks.at(0).at("youngest_ns").get<uint64_t>(), 7 * kMs);
  const auto& frames = leaks.at(0).at("frames");
  ASSERT_EQ(frames.size(), 2u);
  for (const auto& f : frames) expectFrameFields(f);
  EXPECT_EQ(frames.at(0).at("address").get<std::string>(), "0x400123");
  EXPECT_EQ(frames.at(0).at("module").get<std::string>(), "/opt/we\"ird\\dir\n/app\x01\xef\xbf\xbd");
  EXPECT_EQ(frames.at(0).at("build_id").get<std::string>(), "0102fe");
  EXPECT_EQ(frames.at(0).at("offset").get<uint64_t>(), 0x1123u);
  EXPECT_TRUE(frames.at(0).at("function").is_null());
  EXPECT_TRUE(frames.at(0).at("file").is_null());
  EXPECT_TRUE(frames.at(0).at("line").is_null());
  EXPECT_TRUE(frames.at(1).at("module").is_null());
  EXPECT_TRUE(frames.at(1).at("offset").is_null());
  EXPECT_EQ(leaks.at(1).at("bytes").get<uint64_t>(), 24u);

  const auto& doubles = doc.at("double_frees");
  ASSERT_EQ(doubles.size(), 1u);
  EXPECT_EQ(doubles.at(0).at("count").get<uint64_t>(), 1u);
  EXPECT_EQ(doubles.at(0).at("bytes").get<uint64_t>(), 8u);
  EXPECT_EQ(doubles.at(0).at("first_ns").get<uint64_t>(), 6 * kMs);
  expectFrameFields(doubles.at(0).at("frames").at(0));

  // An independent parser agrees that it is JSON.
  if (std::system("python3 -c 'pass' >/dev/null 2>&1") == 0) {
    std::ofstream(dir / "out.json") << r.out;
    EXPECT_EQ(std::system(("python3 -m json.tool " + (dir / "out.json").string() + " >/dev/null").c_str()), 0);
  }
}

TEST(Cli, JsonOptionsAreReflected) {
  TempDir dir;
  writeLeakyTrace(dir / "t.htr");
  const auto r = runHeaptrail({"analyze", "--no-symbols", "-f", "json", "--at", "5ms", "--since", "2ms", "--top", "1",
                      "--min-bytes", "1k", (dir / "t.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json doc = Json::parse(r.out);
  const auto& s = doc.at("summary");
  EXPECT_EQ(s.at("at_ns").get<uint64_t>(), 5 * kMs);
  EXPECT_EQ(s.at("since_ns").get<uint64_t>(), 2 * kMs);
  EXPECT_EQ(s.at("min_bytes").get<uint64_t>(), 1024u);
  EXPECT_EQ(s.at("top").get<uint64_t>(), 1u);
  ASSERT_EQ(doc.at("leaks").size(), 1u);
  EXPECT_EQ(doc.at("leaks").at(0).at("bytes").get<uint64_t>(), 2000u);
  EXPECT_EQ(doc.at("leaks").at(0).at("youngest_ns").get<uint64_t>(), 2 * kMs);
}

TEST(Cli, InfoDescribesTheTrace) {
  TempDir dir;
  writeLeakyTrace(dir / "t.htr");
  auto r = runHeaptrail({"info", (dir / "t.htr").string()});
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
  r = runHeaptrail({"info", (dir / "cut.htr").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("status:           TRUNCATED: file ends after chunk 1 without a footer"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace heaptrail::testing
