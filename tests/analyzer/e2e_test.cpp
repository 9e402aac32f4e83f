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
#include "tests/analyzer/leak_checks.h"
#include "tests/analyzer/synthetic_trace.h"
#include "tests/support/bpf_required.h"
#include "tests/support/source_markers.h"

namespace heaptrail::testing {
namespace {

Recorded recordAndAnalyze(const TempDir& dir, const std::string& program, const std::string& recordOptions = "",
                          const std::vector<std::string>& analyzeOptions = {}) {
  Recorded r;
  const auto trace = dir / "trace.htr";
  const std::string command = std::string(HEAPTRAIL_RECORD_BIN) + " -o " + trace.string() + " " + recordOptions +
                              " -- " + program + " >" + (dir / "record.log").string() + " 2>&1";
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
    args.insert(args.end(), analyzeOptions.begin(), analyzeOptions.end());
    if (json) args.insert(args.end(), {"--format", "json"});
    const int code = analyzer::heaptrailMain(args, out, err);
    EXPECT_EQ(code, 0) << err.str();
    (json ? r.json : r.text) = out.str();
  }
  return r;
}

TEST(EndToEnd, LeakyReportsEveryLeakAtItsSourceLine) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, LEAKY_BIN);
  ASSERT_EQ(r.status, 0);
  const std::string source = std::string(SAMPLES_SOURCE_DIR) + "/leaky.c";
  const auto expected = leakyLeaks();
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
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, PLUGIN_HOST_BIN);
  ASSERT_EQ(r.status, 0);
  checkLeaks(r, std::string(SAMPLES_SOURCE_DIR) + "/plugin.c", "plugin.c", {{"plugin_make", "plugin_leak", 2 * 10010, 2}});
}

TEST(EndToEnd, EveryCxxOperatorLeakAtItsLineAndNoMismatch) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, std::string(SAMPLES_BUILD_DIR) + "/cpp_operators");
  ASSERT_EQ(r.status, 0);
  checkLeaks(r, std::string(SAMPLES_SOURCE_DIR) + "/cpp_operators.cpp", "cpp_operators.cpp",
             {{"leak_new()", "new_plain", 48, 1},
              {"leak_new_array()", "new_array", 100, 1},
              {"leak_new_nothrow()", "new_nothrow", 56, 1},
              {"leak_new_array_nothrow()", "new_array_nothrow", 120, 1},
              {"leak_new_aligned()", "new_aligned", 192, 1},
              {"leak_new_array_aligned()", "new_array_aligned", 384, 1}});
  const JsonValue doc = JsonParser::parse(r.json);
  EXPECT_EQ(doc["summary"]["mismatched_frees"].u64(), 0u) << "a correct program has no mismatch";
  EXPECT_EQ(doc["summary"]["double_frees"].u64(), 0u);
  EXPECT_EQ(doc["summary"]["unknown_frees"].u64(), 0u) << "each delete is recorded once, not again as free";
}

TEST(EndToEnd, MismatchedFamiliesAreReportedWithBothStacks) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, std::string(SAMPLES_BUILD_DIR) + "/cpp_mismatch", "--release-stacks");
  ASSERT_EQ(r.status, 0);
  const std::string source = std::string(SAMPLES_SOURCE_DIR) + "/cpp_mismatch.cpp";
  const JsonValue doc = JsonParser::parse(r.json);
  EXPECT_EQ(doc["summary"]["mismatched_frees"].u64(), 3u);
  struct Want {
    uint64_t bytes;
    std::string allocated, released, allocMarker, freeMarker;
  };
  const std::vector<Want> wants = {{160, "new[]", "delete", "mismatch_new_array", "mismatch_delete"},
                                   {168, "malloc", "delete", "mismatch_malloc", "mismatch_delete_malloc"},
                                   {176, "new", "free", "mismatch_new", "mismatch_free"}};
  const auto& found = doc["mismatched_frees"].array();
  ASSERT_EQ(found.size(), 3u) << r.json;
  for (const auto& want : wants) {
    bool seen = false;
    for (const auto& m : found) {
      if (m["bytes"].u64() != want.bytes) continue;
      seen = true;
      EXPECT_EQ(m["allocated_with"].str(), want.allocated);
      EXPECT_EQ(m["released_with"].str(), want.released);
      const auto& alloc = m["alloc_frames"].array();
      const auto& release = m["release_frames"].array();
      ASSERT_FALSE(alloc.empty());
      ASSERT_FALSE(release.empty()) << "the release's stack is shown too";
      EXPECT_EQ(alloc[0]["line"].u64(), markerLine(source, "ALLOC:" + want.allocMarker)) << want.bytes;
      EXPECT_EQ(release[0]["line"].u64(), markerLine(source, "FREE:" + want.freeMarker)) << want.bytes;
    }
    EXPECT_TRUE(seen) << want.bytes;
  }
  EXPECT_NE(r.text.find("allocated with new[] but released with delete"), std::string::npos) << r.text;
}

TEST(EndToEnd, NewInLibraryWithoutFramePointersNamesTheLibraryFunction) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, std::string(SAMPLES_BUILD_DIR) + "/nofp_main");
  ASSERT_EQ(r.status, 0);
  checkLeaks(r, std::string(SAMPLES_SOURCE_DIR) + "/nofp_lib.cpp", "nofp_lib.cpp",
             {{"nofp_make_widgets", "nofp_new", 3 * 88, 3}});
}

TEST(EndToEnd, FollowedChildIsReportedPerProcess) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, std::string(SAMPLES_BUILD_DIR) + "/leaky_script.sh", "--follow-forks");
  ASSERT_EQ(r.status, 0);
  const JsonValue doc = JsonParser::parse(r.json);
  const auto& processes = doc["summary"]["processes"].array();
  ASSERT_GE(processes.size(), 2u) << "the shell and its leaky child";
  // The child is the process whose leaks come from leak_plain.
  uint64_t child = 0;
  for (const auto& leak : doc["leaks"].array()) {
    const auto& frames = leak["frames"].array();
    if (!frames.empty() && frames[0]["function"].isString() && frames[0]["function"].str() == "leak_plain")
      child = leak["pid"].u64();
  }
  ASSERT_NE(child, 0u);
  ASSERT_NE(child, doc["summary"]["target_pid"].u64());
  const uint64_t childPid = child;
  const auto childTrace = dir / "trace.htr";
  std::ostringstream selected, selectedErr;
  ASSERT_EQ(analyzer::heaptrailMain({"analyze", childTrace.string(), "--top", "0", "--format", "json", "--pid",
                                     std::to_string(childPid)},
                                    selected, selectedErr),
            0)
      << selectedErr.str();
  const JsonValue one = JsonParser::parse(selected.str());
  EXPECT_EQ(one["summary"]["pid"].u64(), childPid);
  uint64_t plainBytes = 0;
  for (const auto& leak : one["leaks"].array()) {
    EXPECT_EQ(leak["pid"].u64(), childPid);
    const auto& frames = leak["frames"].array();
    if (!frames.empty() && frames[0]["function"].isString() && frames[0]["function"].str() == "leak_plain")
      plainBytes += leak["bytes"].u64();
  }
  EXPECT_EQ(plainBytes, 3u * 1001);
}

}  // namespace
}  // namespace heaptrail::testing
