// Programs whose malloc is not libc's: the Debian builds of jemalloc, tcmalloc and
// mimalloc preloaded with LD_PRELOAD, recorded with `-- cmd` and with `-p`. Every
// allocation the program makes must be recorded once, and its leaks reported at their
// lines. Needs root; an allocator library that is not installed fails the test (it is in
// tools/setup.sh).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "analyzer/cli.h"
#include "schema/event_kinds.h"
#include "tests/analyzer/leak_checks.h"
#include "tests/support/bpf_required.h"
#include "tests/support/run_command.h"
#include "tests/support/temp_dir.h"
#include "tests/support/trace_contents.h"

namespace heaptrail::testing {
namespace {

using Json = nlohmann::json;

const std::string kRecorder = HEAPTRAIL_RECORD_BIN;
const std::string kPairs = std::string(SAMPLES_BUILD_DIR) + "/allocator_pairs";
const std::string kPairsSource = std::string(SAMPLES_SOURCE_DIR) + "/allocator_pairs.c";

struct Allocator {
  std::string name;     // for test names
  std::string library;  // what LD_PRELOAD names
};
void PrintTo(const Allocator& a, std::ostream* os) { *os << a.name; }

std::string libraryPath(const std::string& file) {
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib/arm-linux-gnueabihf"})
    if (std::filesystem::exists(std::string(dir) + "/" + file)) return std::string(dir) + "/" + file;
  return {};
}

Recorded analyze(const std::filesystem::path& trace) {
  Recorded r;
  r.status = 0;
  for (const bool json : {false, true}) {
    std::ostringstream out, err;
    std::vector<std::string> args = {"analyze", trace.string(), "--top", "0"};
    if (json) args.insert(args.end(), {"--format", "json"});
    EXPECT_EQ(analyzer::heaptrailMain(args, out, err), 0) << err.str();
    (json ? r.json : r.text) = out.str();
  }
  return r;
}

// `count` allocation/release pairs of blocks of `size` bytes: each allocation recorded
// once, each released before the next one.
void expectEveryPair(const TraceContents& t, uint64_t size = 321, uint64_t count = 2000) {
  uint64_t allocations = 0, pairs = 0, pending = 0;
  for (const auto& e : t.events) {
    if (schema::isAllocation(e.kind) && e.size == size) {
      ++allocations;
      EXPECT_EQ(pending, 0u) << "allocation " << allocations << " before the previous one was freed";
      pending = e.address;
    } else if (!schema::isAllocation(e.kind) && pending && e.address == pending) {
      ++pairs;
      pending = 0;
    }
  }
  EXPECT_EQ(allocations, count) << size << "-byte blocks";
  EXPECT_EQ(pairs, count) << size << "-byte blocks";
}

// malloc was hooked in the preloaded library, and the program's calls were seen there.
void expectHookedIn(const TraceContents& t, const std::string& library) {
  // An attached process's maps name the file a symlink like libtcmalloc_minimal.so.4 leads to.
  const auto file = std::filesystem::canonical(library);
  std::set<uint16_t> inLibrary;
  for (const auto& [id, f] : t.functions)
    if (f.object == library || f.object == file) inLibrary.insert(id);
  EXPECT_FALSE(inLibrary.empty()) << "nothing hooked in " << library;
  uint64_t seen = 0;
  for (const auto& e : t.eventsWithSize(123)) seen += inLibrary.count(e.function);
  EXPECT_EQ(seen, 5u) << "the leaked blocks come from " << library << "'s malloc";
}

class PreloadedAllocator : public ::testing::TestWithParam<Allocator> {
 protected:
  void SetUp() override {
    HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
    library_ = libraryPath(GetParam().library);
    ASSERT_FALSE(library_.empty()) << GetParam().library << " is not installed (tools/setup.sh installs it)";
  }
  void checkTrace() {
    const auto t = loadTrace(trace());
    expectEveryPair(t);
    expectHookedIn(t, library_);
    const auto r = analyze(trace());
    checkLeaks(r, kPairsSource, "allocator_pairs.c", {{"leak_five", "leak_123", 5 * 123, 5}});
    const Json doc = Json::parse(r.json);
    EXPECT_EQ(doc.at("summary").at("double_frees").get<uint64_t>(), 0u);
    EXPECT_EQ(doc.at("summary").at("mismatched_frees").get<uint64_t>(), 0u);
    EXPECT_EQ(doc.at("summary").at("lost_total").get<uint64_t>(), 0u);
    // What the allocator took for itself (arenas, its own objects) is not the program's leak.
    const auto file = std::filesystem::canonical(library_).string();
    for (const auto& leak : doc.at("leaks")) {
      const auto& frames = leak.at("frames");
      ASSERT_FALSE(frames.empty());
      EXPECT_NE(frames.at(0).at("module"), file) << "allocator-internal memory listed as a leak:\n" << leak.dump();
    }
  }
  std::filesystem::path trace() const { return dir_.path() / "t.htr"; }

  TempDir dir_;
  std::string library_;
};

TEST_P(PreloadedAllocator, StartedCommandEveryPairAndExactLeaks) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "the samples are built with AddressSanitizer, whose runtime must come before a preloaded allocator";
#endif
  // LD_PRELOAD in the recorder's environment, which the command inherits.
  const auto r = runCommand({"/usr/bin/env", "LD_PRELOAD=" + library_, kRecorder, "-o", trace().string(), "--", kPairs});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  checkTrace();
}

// LD_PRELOAD set by an intermediate command: its exec is held with --follow-forks, and the
// preloaded library is hooked before the program runs.
TEST_P(PreloadedAllocator, PreloadedByAnIntermediateCommandWithFollowForks) {
  const auto r = runCommand({kRecorder, "-f", "-o", trace().string(), "--", "/usr/bin/env", "LD_PRELOAD=" + library_, kPairs});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  checkTrace();
}

// ... and without it the library is hooked late or never: said, not silent.
TEST_P(PreloadedAllocator, PreloadedByAnIntermediateCommandWithoutFollowForksIsWarned) {
  const auto r = runCommand({kRecorder, "-o", trace().string(), "--", "/usr/bin/env", "LD_PRELOAD=" + library_, kPairs});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const auto file = std::filesystem::canonical(library_).string();
  EXPECT_NE(r.err.find("warning: allocator library " + file), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--follow-forks"), std::string::npos) << r.err;
}

TEST_P(PreloadedAllocator, AttachedProcessEveryPairAndExactLeaks) {
  BackgroundCommand target({"/usr/bin/env", "LD_PRELOAD=" + library_, kPairs, "stdin"});
  ASSERT_TRUE(target.waitForOutput("ready"));
  BackgroundCommand recorder({kRecorder, "-p", std::to_string(target.pid()), "-o", trace().string()});
  ASSERT_TRUE(recorder.waitForError("recording pid")) << recorder.errorSoFar();
  target.closeInput();
  const auto result = recorder.wait();
  ASSERT_EQ(result.exitCode, 0) << result.err;
  target.wait();
  checkTrace();
}

INSTANTIATE_TEST_SUITE_P(Debian, PreloadedAllocator,
                         ::testing::Values(Allocator{"jemalloc", "libjemalloc.so.2"},
                                           Allocator{"tcmalloc", "libtcmalloc_minimal.so.4"},
                                           Allocator{"mimalloc", "libmimalloc.so.2"}),
                         [](const auto& info) { return info.param.name; });

TEST(AllocatorApi, JemallocMallocxFamilyEveryPairAndExactLeaks) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  const std::string program = std::string(SAMPLES_BUILD_DIR) + "/jemalloc_api";
  ASSERT_TRUE(std::filesystem::exists(program)) << "libjemalloc2 is not installed (tools/setup.sh installs it)";
  TempDir dir;
  const auto trace = dir.path() / "t.htr";
  const auto r = runCommand({kRecorder, "-o", trace.string(), "--", program});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << "a linked allocator is hooked before the program runs: " << r.err;
  const auto t = loadTrace(trace);
  expectEveryPair(t, 333, 1000);  // mallocx/sdallocx
  expectEveryPair(t, 334, 1000);  // mallocx/dallocx
  std::set<std::string> names;
  for (const auto& e : t.events) names.insert(t.functionName(e));
  for (const char* f : {"mallocx", "rallocx", "sdallocx", "dallocx"}) EXPECT_TRUE(names.count(f)) << f;
  const auto report = analyze(trace);
  const std::string source = std::string(SAMPLES_SOURCE_DIR) + "/jemalloc_api.c";
  checkLeaks(report, source, "jemalloc_api.c",
             {{"leak_mallocx", "leak_mallocx", 3 * 111, 3}, {"leak_rallocx", "leak_rallocx", 444, 1}});
  const Json doc = Json::parse(report.json);
  EXPECT_EQ(doc.at("summary").at("double_frees").get<uint64_t>(), 0u);
  EXPECT_EQ(doc.at("summary").at("unknown_frees").get<uint64_t>(), 0u) << report.json;
}

// A program whose allocations heaptrail sees none of is said to be one, by the recorder
// and by heaptrail info; one whose allocations it sees is not.
TEST(AllocatorApi, NoAllocatorCallRecordedIsSaid) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempDir dir;
  const auto trace = dir.path() / "t.htr";
  for (const bool allocates : {false, true}) {
    const auto r = runCommand({kRecorder, "-o", trace.string(), "--",
                               std::string(SAMPLES_BUILD_DIR) + (allocates ? "/allocator_pairs" : "/noalloc")});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    EXPECT_EQ(r.err.find("warning: no call to malloc, new or another hooked allocator function was recorded") !=
                  std::string::npos,
              !allocates)
        << r.err;
    std::ostringstream out, err;
    ASSERT_EQ(analyzer::heaptrailMain({"info", trace.string()}, out, err), 0) << err.str();
    EXPECT_EQ(out.str().find("WARNING:          no call to malloc") != std::string::npos, !allocates) << out.str();
    EXPECT_NE(out.str().find("hooked objects:"), std::string::npos) << out.str();
  }
}

// Two allocators in one process: tcmalloc preloaded (malloc, free) and jemalloc linked
// for its own API (mallocx, sdallocx, dallocx): each call recorded once, in the
// allocator it reached.
TEST(AllocatorApi, TwoAllocatorsInOneProcess) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "the samples are built with AddressSanitizer, whose runtime must come before a preloaded allocator";
#endif
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  const std::string program = std::string(SAMPLES_BUILD_DIR) + "/jemalloc_api";
  const std::string tcmalloc = libraryPath("libtcmalloc_minimal.so.4");
  ASSERT_TRUE(std::filesystem::exists(program)) << "libjemalloc2 is not installed (tools/setup.sh installs it)";
  ASSERT_FALSE(tcmalloc.empty()) << "libtcmalloc-minimal4 is not installed (tools/setup.sh installs it)";
  TempDir dir;
  const auto trace = dir.path() / "t.htr";
  const auto r = runCommand({"/usr/bin/env", "LD_PRELOAD=" + tcmalloc, kRecorder, "-o", trace.string(), "--", program});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const auto t = loadTrace(trace);
  expectEveryPair(t, 333, 1000);
  expectEveryPair(t, 334, 1000);
  expectEveryPair(t, 5, 1);
  const auto tcmallocFile = std::filesystem::canonical(tcmalloc).string();
  for (const auto& e : t.eventsWithSize(5)) {
    EXPECT_EQ(t.functions.at(e.function).object, tcmallocFile) << "malloc binds to the preloaded tcmalloc";
  }
  for (const auto& e : t.eventsWithSize(111)) {
    EXPECT_EQ(t.functionName(e), "mallocx");
    EXPECT_NE(t.functions.at(e.function).object.find("libjemalloc"), std::string::npos);
  }
  const auto report = analyze(trace);
  checkLeaks(report, std::string(SAMPLES_SOURCE_DIR) + "/jemalloc_api.c", "jemalloc_api.c",
             {{"leak_mallocx", "leak_mallocx", 3 * 111, 3}, {"leak_rallocx", "leak_rallocx", 444, 1}});
  const Json doc = Json::parse(report.json);
  EXPECT_EQ(doc.at("summary").at("double_frees").get<uint64_t>(), 0u);
  EXPECT_EQ(doc.at("summary").at("unknown_frees").get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace heaptrail::testing
