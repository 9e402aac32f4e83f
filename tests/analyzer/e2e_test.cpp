// End to end: record the sample programs with the real BPF recorder, analyze the trace
// with symbols, and check every leak the sample makes (and only those) by exact bytes,
// count and the source line marked ALLOC:<name>. Needs root.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/analyzer/leak_checks.h"
#include "tests/analyzer/synthetic_trace.h"
#include "tests/support/bpf_required.h"
#include "tests/support/source_markers.h"

namespace heaptrail::testing {

using Json = nlohmann::json;
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
  const Json doc = Json::parse(r.json);
  size_t fromSample = 0;
  for (const auto& leak : doc.at("leaks")) {
    const auto& frames = leak.at("frames");
    if (frames.empty() || !frames.at(0).at("module").is_string() || frames.at(0).at("module").get<std::string>() != LEAKY_BIN) continue;
    ++fromSample;
    const std::string fn = frames.at(0).at("function").is_string() ? frames.at(0).at("function").get<std::string>() : "";
    EXPECT_NE(fn, "churn");
    EXPECT_NE(leak.at("bytes").get<uint64_t>(), 4004u) << "the first block of the realloc chain was released";
    EXPECT_NE(leak.at("bytes").get<uint64_t>(), 4104u);
  }
  EXPECT_EQ(fromSample, expected.size()) << r.json;
  EXPECT_EQ(doc.at("summary").at("double_frees").get<uint64_t>(), 0u);
  EXPECT_EQ(doc.at("summary").at("lost_total").get<uint64_t>(), 0u);
  EXPECT_EQ(doc.at("summary").at("status").get<std::string>(), "complete");
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
  const Json doc = Json::parse(r.json);
  EXPECT_EQ(doc.at("summary").at("mismatched_frees").get<uint64_t>(), 0u) << "a correct program has no mismatch";
  EXPECT_EQ(doc.at("summary").at("double_frees").get<uint64_t>(), 0u);
  EXPECT_EQ(doc.at("summary").at("unknown_frees").get<uint64_t>(), 0u) << "each delete is recorded once, not again as free";
}

TEST(EndToEnd, MismatchedFamiliesAreReportedWithBothStacks) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto r = recordAndAnalyze(dir, std::string(SAMPLES_BUILD_DIR) + "/cpp_mismatch", "--release-stacks");
  ASSERT_EQ(r.status, 0);
  const std::string source = std::string(SAMPLES_SOURCE_DIR) + "/cpp_mismatch.cpp";
  const Json doc = Json::parse(r.json);
  EXPECT_EQ(doc.at("summary").at("mismatched_frees").get<uint64_t>(), 3u);
  struct Want {
    uint64_t bytes;
    std::string allocated, released, allocMarker, freeMarker;
  };
  const std::vector<Want> wants = {{160, "new[]", "delete", "mismatch_new_array", "mismatch_delete"},
                                   {168, "malloc", "delete", "mismatch_malloc", "mismatch_delete_malloc"},
                                   {176, "new", "free", "mismatch_new", "mismatch_free"}};
  const auto& found = doc.at("mismatched_frees");
  ASSERT_EQ(found.size(), 3u) << r.json;
  for (const auto& want : wants) {
    bool seen = false;
    for (const auto& m : found) {
      if (m.at("bytes").get<uint64_t>() != want.bytes) continue;
      seen = true;
      EXPECT_EQ(m.at("allocated_with").get<std::string>(), want.allocated);
      EXPECT_EQ(m.at("released_with").get<std::string>(), want.released);
      const auto& alloc = m.at("alloc_frames");
      const auto& release = m.at("release_frames");
      ASSERT_FALSE(alloc.empty());
      ASSERT_FALSE(release.empty()) << "the release's stack is shown too";
      EXPECT_EQ(alloc.at(0).at("line").get<uint64_t>(), markerLine(source, "ALLOC:" + want.allocMarker)) << want.bytes;
      EXPECT_EQ(release.at(0).at("line").get<uint64_t>(), markerLine(source, "FREE:" + want.freeMarker)) << want.bytes;
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
  const Json doc = Json::parse(r.json);
  const auto& processes = doc.at("summary").at("processes");
  ASSERT_GE(processes.size(), 2u) << "the shell and its leaky child";
  // The child is the process whose leaks come from leak_plain.
  uint64_t child = 0;
  for (const auto& leak : doc.at("leaks")) {
    const auto& frames = leak.at("frames");
    if (!frames.empty() && frames.at(0).at("function").is_string() && frames.at(0).at("function").get<std::string>() == "leak_plain")
      child = leak.at("pid").get<uint64_t>();
  }
  ASSERT_NE(child, 0u);
  ASSERT_NE(child, doc.at("summary").at("target_pid").get<uint64_t>());
  const uint64_t childPid = child;
  const auto childTrace = dir / "trace.htr";
  std::ostringstream selected, selectedErr;
  ASSERT_EQ(analyzer::heaptrailMain({"analyze", childTrace.string(), "--top", "0", "--format", "json", "--pid",
                                     std::to_string(childPid)},
                                    selected, selectedErr),
            0)
      << selectedErr.str();
  const Json one = Json::parse(selected.str());
  EXPECT_EQ(one.at("summary").at("pid").get<uint64_t>(), childPid);
  uint64_t plainBytes = 0;
  for (const auto& leak : one.at("leaks")) {
    EXPECT_EQ(leak.at("pid").get<uint64_t>(), childPid);
    const auto& frames = leak.at("frames");
    if (!frames.empty() && frames.at(0).at("function").is_string() && frames.at(0).at("function").get<std::string>() == "leak_plain")
      plainBytes += leak.at("bytes").get<uint64_t>();
  }
  EXPECT_EQ(plainBytes, 3u * 1001);
}

}  // namespace
}  // namespace heaptrail::testing
