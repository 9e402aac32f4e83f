// The recorder on an emulated arm64 device. tools/arm64/run-guest.sh boots Debian's arm64
// kernel under qemu-system-aarch64 with the static device recorder and arm64 builds of
// samples/leaky.c, records it with `-- cmd` and with `-p`, and brings the traces back.
// They are analyzed here, on x86-64, with the guest's root as the sysroot, and must show
// every leak of leaky.c exactly as the x86-64 end-to-end test does (bytes, counts,
// function and source line), with stacks that go on past the first frame; and the samples
// built without frame pointers (nofp_chain, nofp_strings) have every frame, walked by
// the AArch64 unwind tables in BPF.
// Skips when the guest cannot run here (no qemu, no download); fails instead under
// HEAPTRAIL_REQUIRE_ARM64=1, as in CI.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/analyzer/leak_checks.h"
#include "tests/analyzer/stack_expectations.h"
#include "tests/support/elf_oracle.h"
#include "tests/support/trace_contents.h"

namespace heaptrail::testing {

using Json = nlohmann::json;
namespace {

namespace fs = std::filesystem;

const fs::path kWork = HEAPTRAIL_ARM64_WORK_DIR;
const fs::path kSource = HEAPTRAIL_SOURCE_DIR;

std::string readFile(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

bool requireArm64() {
  const char* v = std::getenv("HEAPTRAIL_REQUIRE_ARM64");
  return v && std::strcmp(v, "1") == 0;
}

class Arm64Device : public ::testing::Test {
 protected:
  // The guest boots once for every case.
  static void SetUpTestSuite() {
    fs::create_directories(kWork);
    const auto log = kWork / "run-guest.log";
    const std::string command = (kSource / "tools/arm64/run-guest.sh").string() + " " + kWork.string() + " >" +
                                log.string() + " 2>&1";
    const int status = std::system(command.c_str());
    exitCode_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    log_ = readFile(log);
  }

  void SetUp() override {
    if (exitCode_ == 77) {
      if (requireArm64()) FAIL() << "HEAPTRAIL_REQUIRE_ARM64=1 but the arm64 guest cannot run:\n" << log_;
      GTEST_SKIP() << log_ << "(set HEAPTRAIL_REQUIRE_ARM64=1 to make this a failure)";
    }
    ASSERT_EQ(exitCode_, 0) << "tools/arm64/run-guest.sh failed:\n" << log_;
  }

  // cmd, release, forks or pid; with the guest's root as the sysroot, or with `files`
  // (e.g. --bundle) in its place.
  static Recorded analyze(const std::string& name, std::vector<std::string> files = {}) {
    Recorded r;
    const fs::path trace = kWork / "out" / (name + ".htr");
    r.status = fs::exists(trace) ? 0 : -1;
    if (files.empty()) files = {"--sysroot", (kWork / "rootfs").string()};
    for (const bool json : {false, true}) {
      std::ostringstream out, err;
      std::vector<std::string> args = {"analyze", trace.string(), "--top", "0", "--no-debuginfod"};
      args.insert(args.end(), files.begin(), files.end());
      if (json) args.insert(args.end(), {"--format", "json"});
      const int code = analyzer::heaptrailMain(args, out, err);
      EXPECT_EQ(code, 0) << err.str();
      (json ? r.json : r.text) = out.str();
    }
    return r;
  }

  // Everything the x86-64 test checks for leaky.c, plus the stack past frame #0.
  static void checkLeaky(const std::string& name, const std::string& module, const std::string& mainFunction,
                         const std::vector<std::string>& files = {}) {
    const std::string status = readFile(kWork / "out/status");
    EXPECT_NE(status.find("HT-STATUS " + name + " 0"), std::string::npos)
        << status << "\nrecorder output:\n" << readFile(kWork / "out" / (name + ".log"));
    const Recorded r = analyze(name, files);
    ASSERT_EQ(r.status, 0) << "no trace came back from the guest:\n" << readFile(kWork / "out/console.log");

    const auto expected = leakyLeaks();
    checkLeaks(r, (kSource / "samples/leaky.c").string(), "leaky.c", expected);

    const Json doc = Json::parse(r.json);
    size_t fromSample = 0;
    bool sawLoopStack = false;
    for (const auto& leak : doc.at("leaks")) {
      const auto& frames = leak.at("frames");
      if (frames.empty() || !frames.at(0).at("module").is_string() || frames.at(0).at("module").get<std::string>() != module) continue;
      ++fromSample;
      const std::string fn = frames.at(0).at("function").is_string() ? frames.at(0).at("function").get<std::string>() : "";
      EXPECT_NE(fn, "churn");
      EXPECT_NE(leak.at("bytes").get<uint64_t>(), 4004u) << "the first block of the realloc chain was released";
      EXPECT_NE(leak.at("bytes").get<uint64_t>(), 4104u);
      if (fn == "make_record") {
        // The arm64 frame-pointer walk: make_record <- leak_in_loop <- main.
        ASSERT_GE(frames.size(), 3u) << r.text;
        EXPECT_EQ(frames.at(1).at("function").is_string() ? frames.at(1).at("function").get<std::string>() : "", "leak_in_loop") << r.text;
        EXPECT_EQ(frames.at(2).at("function").is_string() ? frames.at(2).at("function").get<std::string>() : "", mainFunction) << r.text;
        sawLoopStack = true;
      }
    }
    EXPECT_EQ(fromSample, expected.size()) << r.json;
    EXPECT_TRUE(sawLoopStack) << r.text;
    EXPECT_EQ(doc.at("summary").at("double_frees").get<uint64_t>(), 0u);
    EXPECT_EQ(doc.at("summary").at("lost_total").get<uint64_t>(), 0u);
    EXPECT_EQ(doc.at("summary").at("status").get<std::string>(), "complete");

    const auto trace = loadTrace(kWork / "out" / (name + ".htr"));
    EXPECT_EQ(trace.machine, "aarch64");
  }

  static inline int exitCode_ = -1;
  static inline std::string log_;
};

TEST_F(Arm64Device, GuestKernelHasBtf) {
  const std::string guest = readFile(kWork / "out/guest");
  EXPECT_NE(guest.find("aarch64"), std::string::npos) << guest;
  EXPECT_NE(guest.find("btf=yes"), std::string::npos) << guest;
}

// --release-stacks takes each free's stack at free's first instruction, where the return
// address into the caller is in x30 (not on the stack, as on x86-64): frame 0 must be in
// churn, the function that frees 100 blocks of 3003 bytes.
TEST_F(Arm64Device, StacksAtFunctionEntryStartAtTheCaller) {
  const std::string status = readFile(kWork / "out/status");
  ASSERT_NE(status.find("HT-STATUS release 0"), std::string::npos)
      << status << "\n" << readFile(kWork / "out/release.log");
  const auto t = loadTrace(kWork / "out/release.htr");
  std::map<std::string, ElfOracle> oracles;
  const auto functionOf = [&](const schema::EventRecord& e, size_t frame) -> std::string {
    const auto& frames = t.stacks.at(e.stackId);
    if (frame >= frames.size()) return "<no frame>";
    const uint64_t address = frames[frame] - 1;  // a return address: look at the call
    const auto* m = t.mappingAt(e.pid, address, e.timeNs);
    if (!m) return "<unmapped>";
    const fs::path file = kWork / "rootfs" / fs::path(m->path).relative_path();
    auto& oracle = oracles.try_emplace(m->path, file).first->second;
    return oracle.functionAt(m->fileOffset + (address - m->start));
  };
  // churn: each malloc(3003) is followed by its free.
  size_t frees = 0;
  for (size_t i = 0; i + 1 < t.events.size(); ++i) {
    const auto& alloc = t.events[i];
    const auto& e = t.events[i + 1];
    if (alloc.kind != schema::EventKind::MALLOC || alloc.size != 3003) continue;
    ASSERT_EQ(e.kind, schema::EventKind::FREE);
    ASSERT_EQ(e.address, alloc.address);
    ++frees;
    ASSERT_NE(e.stackId, 0u) << "a free without its stack";
    EXPECT_EQ(functionOf(e, 0), "churn");
    EXPECT_EQ(functionOf(e, 1), "main");
  }
  EXPECT_EQ(frees, 100u);
}

// --follow-forks on arm64 (the recorder traces the shell with ptrace and hooks the child
// at its exec; one link per probe on this 6.1 kernel): leaky runs as the shell's child,
// recorded from its exec, and its leaks are all there.
TEST_F(Arm64Device, FollowForksRecordsTheShellsChild) {
  const std::string status = readFile(kWork / "out/status");
  ASSERT_NE(status.find("HT-STATUS forks 0"), std::string::npos) << status << "\n" << readFile(kWork / "out/forks.log");
  const Recorded r = analyze("forks");
  const Json doc = Json::parse(r.json);
  // The shell (static busybox) allocates nothing through libc: every leak is the child's.
  const uint64_t shell = doc.at("summary").at("target_pid").get<uint64_t>();
  ASSERT_FALSE(doc.at("leaks").empty()) << r.text;
  for (const auto& leak : doc.at("leaks")) EXPECT_NE(leak.at("pid").get<uint64_t>(), shell) << r.text;
  checkLeaks(r, (kSource / "samples/leaky.c").string(), "leaky.c", leakyLeaks());
}

// Built -O2 -fomit-frame-pointer (as distributions build): only the AArch64 unwind
// tables walk these stacks, in BPF on the 6.1 kernel. Every frame up to main by function
// and line, then libc's start (the cross toolchain's libc has no symbol table: module
// only) and _start; the same chains as the x86-64 CfiStacks tests.
class Arm64DeviceCfi : public Arm64Device {
 protected:
  static Json recorded(const std::string& name) {
    const std::string status = readFile(kWork / "out/status");
    EXPECT_NE(status.find("HT-STATUS " + name + " 0"), std::string::npos)
        << status << "\nrecorder output:\n" << readFile(kWork / "out" / (name + ".log"));
    const Recorded r = analyze(name);
    if (r.status != 0) {
      ADD_FAILURE() << "no trace came back from the guest:\n" << readFile(kWork / "out/console.log");
      return Json::object({{"leaks", Json::array()}});
    }
    return Json::parse(r.json);
  }
  static inline const fs::path kSamples = kSource / "samples";
  static inline const std::string kLibc = "/libc.so.6";
};

TEST_F(Arm64DeviceCfi, ChainTenDeepWithoutFramePointersUpToMain) {
  const Json doc = recorded("nofp_chain");
  const Json* leak = leakOf(doc, 73);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  std::vector<Want> want = nofpChainFrames(kSamples);
  want.push_back(framesOf(kLibc));
  want.push_back(frame("", "/samples/nofp_chain"));  // _start
  expectStack(*leak, want);
  expectEveryFrameMapped(doc);
  for (const auto& l : doc.at("leaks")) EXPECT_FALSE(l.contains("stack_incomplete")) << describe(l.at("frames"));
  // Walked whole in BPF from the command's first allocation: its libraries' mappings are
  // found by the walker itself (bpf_find_vma) before the recorder has read them.
  const std::string log = readFile(kWork / "out/nofp_chain.log");
  EXPECT_NE(log.find(" 0 stack walks finished by the recorder"), std::string::npos) << log;
  EXPECT_NE(log.find("unwind table of /lib/aarch64-linux-gnu/libc.so.6 (pid"), std::string::npos) << log;
}

TEST_F(Arm64DeviceCfi, CallbackThroughLibcQsort) {
  const Json doc = recorded("nofp_chain");
  const Json* leak = leakOf(doc, 48);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  expectStack(*leak, {at("compare_ints", kSamples, "nofp_chain.c", "ALLOC:compare_ints"), framesOf(kLibc),
                      at("sort_numbers", kSamples, "nofp_chain.c", "CALL:qsort"),
                      at("main", kSamples, "nofp_chain.c", "CALL:main_sort"), framesOf(kLibc),
                      frame("", "/samples/nofp_chain")});
}

TEST_F(Arm64DeviceCfi, NewStdStringAllocatedInsideLibstdcxx) {
  const Json doc = recorded("nofp_strings");
  ASSERT_NE(leakOf(doc, 32), nullptr) << "the std::string itself, made with new: " << doc.dump(1);
  const Json* leak = leakOf(doc, 301);  // the characters, allocated by libstdc++
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  expectStack(*leak, {framesOf("/libstdc++.so.6"), framesOf("/samples/nofp_strings"),
                      at("keep_text(unsigned long)", kSamples, "nofp_strings.cpp", "CALL:keep_text"),
                      at("main", kSamples, "nofp_strings.cpp", "CALL:main_keep"), framesOf(kLibc),
                      frame("", "/samples/nofp_strings")});
  bool makeText = false;
  for (const auto& f : leak->at("frames"))
    makeText |= matches(f, at("make_text[abi:cxx11](unsigned long)", kSamples, "nofp_strings.cpp", "ALLOC:make_text"));
  EXPECT_TRUE(makeText) << describe(leak->at("frames"));
  expectEveryFrameMapped(doc);
}

// A plugin without frame pointers leaks right after its dlopen, before the recorder has
// its table: the BPF walk stops at its first frame and the recorder finishes it with the
// AArch64 rules from the copy of the stack the event carries (recorder/unwind/deferred_walk).
TEST_F(Arm64DeviceCfi, LeakRightAfterDlopenIsFinishedByTheRecorder) {
  const Json doc = recorded("nofp_dlopen");
  const Json* leak = leakOf(doc, 3 * 40);
  ASSERT_NE(leak, nullptr) << doc.dump(1);
  expectStack(*leak, {at("plugin_inner", kSamples, "nofp_plugin.c", "ALLOC:plugin_inner"),
                      at("plugin_leak", kSamples, "nofp_plugin.c", "CALL:plugin_leak"),
                      at("run_plugin", kSamples, "nofp_dlopen.c", "CALL:run_plugin"),
                      at("main", kSamples, "nofp_dlopen.c", "CALL:main_plugin"), framesOf(kLibc),
                      frame("", "/samples/nofp_dlopen")});
  expectEveryFrameMapped(doc);
}

TEST_F(Arm64Device, CommandRecordingShowsEveryLeakOfLeaky) { checkLeaky("cmd", "/samples/leaky", "main"); }

// --stack-mode fp: no tables, every frame by the frame record {x29, x30} at x29 (leaky is
// built with frame pointers), the same stacks.
TEST_F(Arm64Device, FramePointerModeWalksTheFrameRecords) { checkLeaky("fp", "/samples/leaky", "main"); }

// `heaptrail-record bundle` on the device packs what the trace names; analyzed here with
// the bundle alone (no copy of the device's root), the results are the same.
TEST_F(Arm64Device, BundleMadeOnTheDeviceReplacesTheSysroot) {
  const std::string status = readFile(kWork / "out/status");
  ASSERT_NE(status.find("HT-STATUS bundle 0"), std::string::npos) << status << "\n" << readFile(kWork / "out/bundle.log");
  EXPECT_NE(readFile(kWork / "out/bundle.log").find("bundle: 3 files"), std::string::npos)
      << "leaky, libc and the dynamic loader: " << readFile(kWork / "out/bundle.log");
  checkLeaky("cmd", "/samples/leaky", "main", {"--bundle", (kWork / "out/cmd.bundle").string()});
}

TEST_F(Arm64Device, AttachedRecordingShowsEveryLeakOfLeaky) {
  checkLeaky("pid", "/samples/leaky_attach", "sample_main");
}

}  // namespace
}  // namespace heaptrail::testing
