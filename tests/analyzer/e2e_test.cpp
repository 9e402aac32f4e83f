// End to end: record the sample programs with the real BPF recorder, analyze the trace
// with symbols, and check every leak the sample makes (and only those) by exact bytes,
// count and the source line marked ALLOC:<name>. Needs root.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/analyzer/json_value.h"
#include "tests/analyzer/synthetic_trace.h"

namespace heaptrail::testing {
namespace {

bool requireBpf() {
  const char* v = std::getenv("HEAPTRAIL_REQUIRE_BPF");
  return v && std::string(v) == "1";
}

#define NEED_ROOT()                                                                           \
  do {                                                                                        \
    if (::geteuid() != 0) {                                                                   \
      if (requireBpf()) FAIL() << "HEAPTRAIL_REQUIRE_BPF=1 but not running as root";          \
      GTEST_SKIP() << "recording needs root (BPF uprobes); run as root or set "               \
                      "HEAPTRAIL_REQUIRE_BPF=1 to make this a failure";                       \
    }                                                                                         \
  } while (0)

// Line number of the line containing "ALLOC:<name>" (with nothing after the name).
unsigned markerLine(const std::string& source, const std::string& name) {
  std::ifstream in(source);
  std::string line;
  for (unsigned n = 1; std::getline(in, line); ++n) {
    const auto pos = line.find("ALLOC:" + name);
    if (pos == std::string::npos) continue;
    const size_t end = pos + 6 + name.size();
    if (end == line.size() || !(std::isalnum(static_cast<unsigned char>(line[end])) || line[end] == '_')) return n;
  }
  ADD_FAILURE() << "no ALLOC:" << name << " in " << source;
  return 0;
}

struct Recorded {
  int status = -1;
  std::string text, json;
};

Recorded recordAndAnalyze(const TempDir& dir, const std::string& program) {
  Recorded r;
  const auto trace = dir / "trace.htr";
  const std::string command = std::string(HEAPTRAIL_RECORD_BIN) + " -o " + trace.string() + " -- " + program +
                              " >" + (dir / "record.log").string() + " 2>&1";
  const int status = std::system(command.c_str());
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (r.status != 0) {
    std::ifstream in(dir / "record.log");
    ADD_FAILURE() << "recording failed (" << r.status << "): " << std::string(std::istreambuf_iterator<char>(in), {});
    return r;
  }
  for (const bool json : {false, true}) {
    std::ostringstream out, err;
    std::vector<std::string> args = {"analyze", trace.string(), "--top", "0"};
    if (json) args.insert(args.end(), {"--format", "json"});
    const int code = analyzer::heaptrailMain(args, out, err);
    EXPECT_EQ(code, 0) << err.str();
    (json ? r.json : r.text) = out.str();
  }
  return r;
}

struct ExpectedLeak {
  std::string function;  // frame #0
  std::string marker;    // ALLOC:<marker>
  uint64_t bytes;
  uint64_t count;
};

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checks each expected leak appears in the JSON and the text with frame #0 at its
// marker. A marker reached through several call sites makes several stacks: their
// bytes and counts are summed.
void checkLeaks(const Recorded& r, const std::string& source, const std::string& sourceName,
                const std::vector<ExpectedLeak>& expected) {
  const JsonValue doc = JsonParser::parse(r.json);
  const auto& leaks = doc["leaks"].array();
  for (const auto& e : expected) {
    const unsigned line = markerLine(source, e.marker);
    uint64_t bytes = 0, count = 0;
    for (const auto& leak : leaks) {
      const auto& frames = leak["frames"].array();
      if (frames.empty() || !frames[0]["function"].isString() || frames[0]["function"].str() != e.function) continue;
      if (!frames[0]["file"].isString() || !endsWith(frames[0]["file"].str(), "/" + sourceName)) continue;
      if (frames[0]["line"].isNull() || frames[0]["line"].u64() != line) continue;
      bytes += leak["bytes"].u64();
      count += leak["count"].u64();
    }
    EXPECT_EQ(bytes, e.bytes) << "JSON leak " << e.marker << " (" << e.function << " at " << sourceName << ":"
                              << line << ")\n" << r.json;
    EXPECT_EQ(count, e.count) << "JSON leak " << e.marker;

    // Text: "<bytes> bytes in <n> allocation(s) from stack ...", then frame #0.
    uint64_t textBytes = 0, textCount = 0, groupBytes = 0, groupCount = 0;
    std::istringstream text(r.text);
    std::string current;
    while (std::getline(text, current)) {
      unsigned long long b = 0, n = 0;
      if (std::sscanf(current.c_str(), "%llu bytes in %llu allocation", &b, &n) == 2 &&
          current.find(" from stack") != std::string::npos) {
        groupBytes = b;
        groupCount = n;
        continue;
      }
      if (current.rfind("    #0 " + e.function + " ", 0) == 0 && endsWith(current, sourceName + ":" + std::to_string(line))) {
        textBytes += groupBytes;
        textCount += groupCount;
      }
      groupBytes = groupCount = 0;
    }
    EXPECT_EQ(textBytes, e.bytes) << "text leak " << e.marker << "\n" << r.text;
    EXPECT_EQ(textCount, e.count) << "text leak " << e.marker;
  }
}

TEST(EndToEnd, LeakyReportsEveryLeakAtItsSourceLine) {
  NEED_ROOT();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, LEAKY_BIN);
  ASSERT_EQ(r.status, 0);
  const std::string source = std::string(SAMPLES_SOURCE_DIR) + "/leaky.c";
  const std::vector<ExpectedLeak> expected = {
      {"leak_plain", "leak_plain", 3 * 1001, 3},
      {"make_record", "leak_in_loop", 10 * 2002, 10},
      {"realloc_chain", "realloc_chain", 4204, 1},
      {"leak_calloc", "leak_calloc", 5 * 1005, 1},
      {"leak_memalign", "leak_posix_memalign", 6006, 1},
      {"leak_memalign", "leak_memalign", 6272, 1},
      {"big_and_mapped", "leak_mmap", 12 * 4096, 1},
  };
  checkLeaks(r, source, "leaky.c", expected);

  // No other leak comes from the sample's own code (libc's own buffers may appear).
  const JsonValue doc = JsonParser::parse(r.json);
  size_t fromSample = 0;
  for (const auto& leak : doc["leaks"].array()) {
    const auto& frames = leak["frames"].array();
    if (frames.empty() || !frames[0]["module"].isString() || frames[0]["module"].str() != LEAKY_BIN) continue;
    ++fromSample;
    const std::string fn = frames[0]["function"].isString() ? frames[0]["function"].str() : "";
    EXPECT_NE(fn, "churn");
    EXPECT_NE(leak["bytes"].u64(), 4004u) << "the first block of the realloc chain was released";
    EXPECT_NE(leak["bytes"].u64(), 4104u);
  }
  EXPECT_EQ(fromSample, expected.size()) << r.json;
  EXPECT_EQ(doc["summary"]["double_frees"].u64(), 0u);
  EXPECT_EQ(doc["summary"]["lost_total"].u64(), 0u);
  EXPECT_EQ(doc["summary"]["status"].str(), "complete");
}

TEST(EndToEnd, PluginLeakResolvesAfterDlclose) {
  NEED_ROOT();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, PLUGIN_HOST_BIN);
  ASSERT_EQ(r.status, 0);
  checkLeaks(r, std::string(SAMPLES_SOURCE_DIR) + "/plugin.c", "plugin.c", {{"plugin_make", "plugin_leak", 2 * 10010, 2}});
}

}  // namespace
}  // namespace heaptrail::testing
