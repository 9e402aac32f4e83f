// What the field throws at a recording: a full disk, two recorders at once, crashes,
// and cleanup of everything attached on every exit path.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/support/bpf_required.h"
#include "tests/support/run_command.h"
#include "tests/support/trace_contents.h"

namespace heaptrail {
namespace {

using schema::EventKind;

const std::string kRecorder = HEAPTRAIL_RECORD_BIN;
const std::string kSamples = HEAPTRAIL_SAMPLES_DIR;

class RecorderRobustnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
    char pattern[] = "/tmp/heaptrail-robust-XXXXXX";
    dir_ = ::mkdtemp(pattern);
  }
  void TearDown() override {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  bool mounted_ = false;
};

// How many of the recorder's return programs are loaded system wide, from bpftool.
size_t loadedRecorderPrograms() {
  const std::string out = testing::runCommand({"/usr/sbin/bpftool", "prog", "show"}).out;
  size_t n = 0;
  for (size_t at = out.find("name alloc_return"); at != std::string::npos; at = out.find("name alloc_return", at + 1)) ++n;
  return n;
}

TEST_F(RecorderRobustnessTest, FullDiskStopsWithAClearErrorAndAValidFile) {
  ASSERT_EQ(::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=12k"), 0) << std::strerror(errno);
  mounted_ = true;
  const auto file = dir_ / "t.htr";
  const auto r = testing::runCommand({kRecorder, "-o", file.string(), "--", kSamples + "/cross_threads"});
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_NE(r.err.find("disk full"), std::string::npos) << r.err;
  const auto t = testing::loadTrace(file);  // readable: no exception
  EXPECT_NE(t.end, schema::TraceEnd::Corrupt) << t.problem;
  if (t.hasFooter) {
    EXPECT_EQ(t.endReason, schema::EndReason::ERROR);
  }
  EXPECT_LT(t.events.size(), 3000u) << "the recording stopped";
}

TEST_F(RecorderRobustnessTest, TwoRecordersOnOneTargetBothRecordEverything) {
  testing::BackgroundCommand target({kSamples + "/threads", "1.5"});
  const auto pid = std::to_string(target.pid());
  testing::BackgroundCommand first({kRecorder, "-p", pid, "-o", (dir_ / "a.htr").string()});
  testing::BackgroundCommand second({kRecorder, "-p", pid, "-o", (dir_ / "b.htr").string()});
  // A third one on the first one's file is refused, and does not disturb it.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto third = testing::runCommand({kRecorder, "-p", pid, "-o", (dir_ / "a.htr").string()});
  EXPECT_EQ(third.exitCode, 1);
  EXPECT_NE(third.err.find("another heaptrail recorder"), std::string::npos) << third.err;
  ASSERT_EQ(first.wait().exitCode, 0);
  ASSERT_EQ(second.wait().exitCode, 0);
  target.wait();
  const auto a = testing::loadTrace(dir_ / "a.htr");
  const auto b = testing::loadTrace(dir_ / "b.htr");
  EXPECT_EQ(a.end, schema::TraceEnd::Complete);
  EXPECT_EQ(b.end, schema::TraceEnd::Complete);
  EXPECT_EQ(a.eventsWithSize(8008).size(), 400u);
  EXPECT_EQ(b.eventsWithSize(8008).size(), 400u);
}

TEST_F(RecorderRobustnessTest, CrashingTargetEndsTheRecordingAndSaysWhy) {
  const auto file = dir_ / "t.htr";
  const auto r = testing::runCommand({kRecorder, "-o", file.string(), "--", "/bin/sh", "-c", "kill -ABRT $$"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.err.find("signal 6"), std::string::npos) << r.err;
  const auto t = testing::loadTrace(file);
  EXPECT_EQ(t.endReason, schema::EndReason::TARGET_EXITED);
  bool aborted = false;
  for (const auto& p : t.processes) aborted |= p.kind == schema::ProcessEventKind::EXIT && p.signal == SIGABRT;
  EXPECT_TRUE(aborted);
}

TEST_F(RecorderRobustnessTest, NothingStaysAttachedAfterAnyExit) {
  // Counted against what was loaded before, so that other BPF users do not matter.
  const size_t before = loadedRecorderPrograms();
  // Normal end.
  testing::runCommand({kRecorder, "-o", (dir_ / "a.htr").string(), "--", kSamples + "/quick"});
  EXPECT_EQ(loadedRecorderPrograms(), before);
  // An error after the programs were loaded and some probes attached.
  const auto r = testing::runCommand({kRecorder, "-o", (dir_ / "b.htr").string(), "--alloc-fn",
                                      "missing_fn=malloc", "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(loadedRecorderPrograms(), before);
  // Killed while recording.
  testing::BackgroundCommand target({kSamples + "/aged", "5"});
  testing::BackgroundCommand recorder({kRecorder, "-p", std::to_string(target.pid()), "-o", (dir_ / "c.htr").string()});
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(loadedRecorderPrograms(), before + 1) << "loaded while recording";
  recorder.signal(SIGKILL);
  recorder.wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(loadedRecorderPrograms(), before);
}

}  // namespace
}  // namespace heaptrail
