// Full stacks through code without frame pointers (issue 10): the samples built
// -O2 -fomit-frame-pointer are recorded with the BPF CFI walker, and EVERY frame of each
// leak's chain, up to main and libc's start, is checked by function and file:line; no
// stack of the trace may hold a frame outside an executable mapping. Needs root.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "analyzer/cli.h"
#include "tests/support/bpf_required.h"
#include "tests/support/run_command.h"
#include "tests/analyzer/stack_expectations.h"

namespace heaptrail::testing {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kSamples = SAMPLES_BUILD_DIR;
const std::string kSources = SAMPLES_SOURCE_DIR;

struct TempTrace {
  fs::path dir;
  TempTrace() {
    char name[] = "/tmp/heaptrail-cfi-XXXXXX";
    dir = ::mkdtemp(name);
  }
  ~TempTrace() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  fs::path trace() const { return dir / "trace.htr"; }
};

// Records `argv` (a sample that waits on stdin after printing "ready") once the recorder
// has loaded the unwind tables of `modules` (path suffixes, as --verbose prints them), then
// analyzes the trace as JSON.
Json recordGated(const TempTrace& t, std::vector<std::string> argv, const std::vector<std::string>& modules,
                 const std::vector<std::string>& recordOptions = {}) {
  std::vector<std::string> command = {HEAPTRAIL_RECORD_BIN, "-v", "-o", t.trace().string()};
  command.insert(command.end(), recordOptions.begin(), recordOptions.end());
  command.push_back("--");
  command.insert(command.end(), argv.begin(), argv.end());
  BackgroundCommand recorder(command);
  EXPECT_TRUE(recorder.waitForOutput("ready")) << recorder.errorSoFar();
  for (const auto& module : modules)
    EXPECT_TRUE(recorder.waitForError(module + " (pid")) << module << "\n" << recorder.errorSoFar();
  recorder.writeInput("go\n");
  const auto result = recorder.wait();
  EXPECT_EQ(result.exitCode, 0) << result.err;
  std::ostringstream out, err;
  const int code = analyzer::heaptrailMain({"analyze", t.trace().string(), "--top", "0", "--format", "json"}, out, err);
  EXPECT_EQ(code, 0) << err.str();
  return Json::parse(out.str());
}

Want at(const std::string& function, const std::string& source, const std::string& marker) {
  return ::heaptrail::testing::at(function, fs::path(kSources), source, marker);
}

const std::string kLibc = "libc.so.6";
const std::vector<Want> kStart = {frame("__libc_start_call_main", kLibc), frame("__libc_start_main", kLibc)};

// nofp_chain's leak of 73 bytes, up to libc's start and the program's _start.
std::vector<Want> chainStack() {
  std::vector<Want> want = nofpChainFrames(kSources);
  want.insert(want.end(), kStart.begin(), kStart.end());
  want.push_back(frame("", "/nofp_chain"));  // _start (no debug info for it)
  return want;
}

// nofp_dlopen's leak, made in the plugin it loaded.
std::vector<Want> pluginStack() {
  std::vector<Want> want = {at("plugin_inner", "nofp_plugin.c", "ALLOC:plugin_inner"),
                            at("plugin_leak", "nofp_plugin.c", "CALL:plugin_leak"),
                            at("run_plugin", "nofp_dlopen.c", "CALL:run_plugin"),
                            at("main", "nofp_dlopen.c", "CALL:main_plugin")};
  want.insert(want.end(), kStart.begin(), kStart.end());
  want.push_back(frame("", "/nofp_dlopen"));
  return want;
}

// Records `argv` from its first instruction, without waiting for anything; `log` gets the
// recorder's --verbose output.
Json recordStarted(const TempTrace& t, const std::vector<std::string>& argv, std::string& log) {
  std::vector<std::string> command = {HEAPTRAIL_RECORD_BIN, "-v", "-o", t.trace().string(), "--"};
  command.insert(command.end(), argv.begin(), argv.end());
  BackgroundCommand recorder(command);
  const auto result = recorder.wait();
  EXPECT_EQ(result.exitCode, 0) << result.err;
  log = result.err;
  std::ostringstream out, err;
  EXPECT_EQ(analyzer::heaptrailMain({"analyze", t.trace().string(), "--top", "0", "--format", "json"}, out, err), 0)
      << err.str();
  return Json::parse(out.str());
}

TEST(CfiStacks, ChainTenDeepWithoutFramePointersUpToMain) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempTrace t;
  const std::string exe = kSamples + "/nofp_chain";
  const Json doc = recordGated(t, {exe, "stdin"}, {exe, kLibc});
  const Json* leak = leakOf(doc, 73);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  expectStack(*leak, chainStack());
  expectEveryFrameMapped(doc);
}

TEST(CfiStacks, CallbackThroughLibcQsort) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempTrace t;
  const std::string exe = kSamples + "/nofp_chain";
  const Json doc = recordGated(t, {exe, "stdin"}, {exe, kLibc});
  const Json* leak = leakOf(doc, 48);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  std::vector<Want> want = {at("compare_ints", "nofp_chain.c", "ALLOC:compare_ints"), framesOf(kLibc),
                            at("sort_numbers", "nofp_chain.c", "CALL:qsort"),
                            at("main", "nofp_chain.c", "CALL:main_sort")};
  want.insert(want.end(), kStart.begin(), kStart.end());
  want.push_back(frame("", "/nofp_chain"));
  expectStack(*leak, want);
  // The libc part goes through qsort's merge sort.
  bool qsort = false;
  for (const auto& f : leak->at("frames")) qsort |= text(f.at("function")).find("qsort") != std::string::npos;
  EXPECT_TRUE(qsort) << describe(leak->at("frames"));
}

TEST(CfiStacks, NewStdStringAllocatedInsideLibstdcxx) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempTrace t;
  const std::string exe = kSamples + "/nofp_strings";
  const Json doc = recordGated(t, {exe, "stdin"}, {exe, kLibc, "libstdc++.so.6.0.30"});
  const Json* leak = leakOf(doc, 301);  // the characters, allocated by libstdc++
  ASSERT_NE(leakOf(doc, 32), nullptr) << "the std::string itself, made with new";
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  // _M_mutate and _M_replace_aux in libstdc++, then append() inlined into make_text.
  std::vector<Want> want = {framesOf("libstdc++.so.6.0.30"), {"", "basic_string.h", 0, "/nofp_strings"},
                            at("make_text[abi:cxx11](unsigned long)", "nofp_strings.cpp", "ALLOC:make_text"),
                            at("keep_text(unsigned long)", "nofp_strings.cpp", "CALL:keep_text"),
                            at("main", "nofp_strings.cpp", "CALL:main_keep")};
  want.insert(want.end(), kStart.begin(), kStart.end());
  want.push_back(frame("", "/nofp_strings"));
  expectStack(*leak, want);
  expectEveryFrameMapped(doc);
}

TEST(CfiStacks, LeakInADlopenedLibraryWithoutFramePointers) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempTrace t;
  const std::string exe = kSamples + "/nofp_dlopen";
  const std::string plugin = kSamples + "/libnofp_plugin.so";
  const Json doc = recordGated(t, {exe, "stdin", plugin}, {exe, kLibc, plugin});
  const Json* leak = leakOf(doc, 3 * 40);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  expectStack(*leak, pluginStack());
  expectEveryFrameMapped(doc);
}

// A started command allocates in its first milliseconds, before the recorder has read the
// kernel's records of the libraries it maps: the BPF walker finds those files itself (by
// build-id, their tables were loaded before the command started), so no walk is left to
// the recorder and every stack is whole from the first allocation.
TEST(CfiStacks, AStartedCommandIsWalkedInBpfFromItsFirstAllocation) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempTrace t;
  const std::string exe = kSamples + "/nofp_chain";
  std::string log;
  const Json doc = recordStarted(t, {exe}, log);
  const Json* leak = leakOf(doc, 73);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  expectStack(*leak, chainStack());
  expectEveryFrameMapped(doc);
  for (const auto& l : doc.at("leaks")) EXPECT_FALSE(l.contains("stack_incomplete")) << describe(l.at("frames"));
  EXPECT_NE(log.find(" 0 stack walks finished by the recorder"), std::string::npos) << log;
}

// The plugin leaks right after dlopen, before the recorder can have loaded its table: the
// walk stops in BPF at the plugin and the recorder finishes it from a copy of the stack,
// with pages of run_plugin's frame that were never touched (and cannot be copied) in the
// middle. The stack is the same as when the table was loaded in time.
TEST(CfiStacks, LeakRightAfterDlopenIsFinishedByTheRecorder) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempTrace t;
  const std::string exe = kSamples + "/nofp_dlopen";
  const std::string plugin = kSamples + "/libnofp_plugin.so";
  std::string log;
  const Json doc = recordStarted(t, {exe, plugin}, log);
  const Json* leak = leakOf(doc, 3 * 40);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  expectStack(*leak, pluginStack());
  expectEveryFrameMapped(doc);
}

// Frame pointers only: the same chain cannot be walked, and must be cut (and marked)
// rather than padded with whatever rbp points at.
TEST(CfiStacks, FramePointerModeMarksWhatItCannotWalk) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  TempTrace t;
  const std::string exe = kSamples + "/nofp_chain";
  const Json doc = recordGated(t, {exe, "stdin"}, {exe, kLibc}, {"--stack-mode", "fp"});
  const Json* leak = leakOf(doc, 73);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  const Json& frames = leak->at("frames");
  ASSERT_GE(frames.size(), 1u);
  EXPECT_EQ(text(frames[0].at("function")), "chain_leaf");
  expectEveryFrameMapped(doc);
  // Whatever it walked is a real caller chain or it says it is incomplete.
  bool reachedMain = false;
  for (const auto& f : frames) reachedMain |= text(f.at("function")) == "main";
  EXPECT_TRUE(reachedMain || leak->contains("stack_incomplete")) << describe(frames);
}

}  // namespace
}  // namespace heaptrail::testing
