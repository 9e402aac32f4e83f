// What the field throws at a recording: a full disk, two recorders at once, crashes,
// and cleanup of everything attached on every exit path.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/bpf_required.h"
#include "tests/support/run_command.h"
#include "tests/support/temp_dir.h"
#include "tests/support/trace_contents.h"

namespace heaptrail {
namespace {

using schema::EventKind;

const std::string kRecorder = HEAPTRAIL_RECORD_BIN;
const std::string kSamples = HEAPTRAIL_SAMPLES_DIR;

class RecorderRobustnessTest : public ::testing::Test {
 protected:
  void SetUp() override { HEAPTRAIL_REQUIRE_BPF_OR_SKIP(); }
  void TearDown() override {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  testing::TempDir tmp_;
  const std::filesystem::path& dir_ = tmp_.path();
  bool mounted_ = false;
};

// The BPF programs and links a process holds, by id, from its fdinfo: only the
// recorder's own objects are looked at, whatever else runs on the machine.
std::set<uint32_t> bpfObjectsHeldBy(int pid, const char* field) {
  std::set<uint32_t> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(field, 0) == 0) ids.insert(static_cast<uint32_t>(std::stoul(line.substr(std::strlen(field)))));
  }
  return ids;
}

bool programExists(uint32_t id) {
  return testing::runCommand({"/usr/sbin/bpftool", "prog", "show", "id", std::to_string(id)}).exitCode == 0;
}

bool linkExists(uint32_t id) {
  return testing::runCommand({"/usr/sbin/bpftool", "link", "show", "id", std::to_string(id)}).exitCode == 0;
}

// The kernel frees a closed program asynchronously: true once none of `ids` exists
// any more, false if one is still there after a few seconds (it leaked).
bool allGone(const std::set<uint32_t>& ids, bool (*exists)(uint32_t)) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    bool any = false;
    for (uint32_t id : ids) any |= exists(id);
    if (!any) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Programs with an id above `afterId` that look like the recorder's (by name) and that
// no process holds: left behind by a recorder that exited. Programs of other recorders
// running meanwhile are held by them and do not count.
std::set<uint32_t> unheldRecorderPrograms(uint32_t afterId) {
  // Listed before the holders are looked for: a program another recorder loads in
  // between is then already held when /proc is read.
  std::istringstream out(testing::runCommand({"/usr/sbin/bpftool", "prog", "show"}).out);
  std::set<uint32_t> held;
  std::error_code ec;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = proc.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto ids = bpfObjectsHeldBy(std::stoi(name), "prog_id:");
    held.insert(ids.begin(), ids.end());
  }
  std::set<uint32_t> unheld;
  std::string line;
  while (std::getline(out, line)) {
    const auto colon = line.find(':');
    const auto name = line.find(" name ");
    if (colon == std::string::npos || name == std::string::npos || !std::isdigit(static_cast<unsigned char>(line[0])))
      continue;
    const auto id = static_cast<uint32_t>(std::stoul(line.substr(0, colon)));
    const std::string program = line.substr(name + 6, line.find(' ', name + 6) - name - 6);
    const bool ours = program == "alloc_entry" || program == "alloc_return";
    if (id > afterId && ours && !held.count(id)) unheld.insert(id);
  }
  return unheld;
}

uint32_t highestProgramId() {
  uint32_t highest = 0;
  std::istringstream out(testing::runCommand({"/usr/sbin/bpftool", "prog", "show"}).out);
  std::string line;
  while (std::getline(out, line))
    if (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0])))
      highest = std::max(highest, static_cast<uint32_t>(std::stoul(line.substr(0, line.find(':')))));
  return highest;
}

// Records `target` (already running) until `stop` ends the recording, and returns
// whether every BPF program and link the recorder held is gone afterwards.
template <typename Stop>
void expectNothingLeftAfter(const std::vector<std::string>& recorderArgv, Stop stop) {
  testing::BackgroundCommand recorder(recorderArgv);
  ASSERT_TRUE(recorder.waitForError("recording pid"));
  const auto programs = bpfObjectsHeldBy(recorder.pid(), "prog_id:");
  const auto links = bpfObjectsHeldBy(recorder.pid(), "link_id:");
  EXPECT_GE(programs.size(), 1u) << "the recorder holds its programs";
  EXPECT_GE(links.size(), 1u) << "and its uprobe links";
  stop(recorder);
  recorder.wait();
  EXPECT_TRUE(allGone(programs, programExists)) << "a program stayed loaded";
  EXPECT_TRUE(allGone(links, linkExists)) << "a uprobe stayed attached";
}

TEST_F(RecorderRobustnessTest, FullDiskStopsWithAClearErrorAndAValidFile) {
  // One page: cross_threads' trace with exact times (~5 KiB) does not fit.
  ASSERT_EQ(::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=4k"), 0) << std::strerror(errno);
  mounted_ = true;
  const auto file = dir_ / "t.htr";
  const auto r = testing::runCommand(
      {kRecorder, "--time-resolution", "1ns", "-o", file.string(), "--", kSamples + "/cross_threads"});
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
  testing::BackgroundCommand target({kSamples + "/threads", "stdin"});
  ASSERT_TRUE(target.waitForOutput("ready"));
  const auto pid = std::to_string(target.pid());
  testing::BackgroundCommand first({kRecorder, "-p", pid, "-o", (dir_ / "a.htr").string()});
  testing::BackgroundCommand second({kRecorder, "-p", pid, "-o", (dir_ / "b.htr").string()});
  // A third one on the first one's file is refused, and does not disturb it.
  ASSERT_TRUE(first.waitForError("recording pid"));
  ASSERT_TRUE(second.waitForError("recording pid"));
  const auto third = testing::runCommand({kRecorder, "-p", pid, "-o", (dir_ / "a.htr").string()});
  EXPECT_EQ(third.exitCode, 1);
  EXPECT_NE(third.err.find("another heaptrail recorder"), std::string::npos) << third.err;
  target.closeInput();  // both recorders are attached: now the threads allocate
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
  // Normal end: the target exits.
  {
    testing::BackgroundCommand target({kSamples + "/aged", "stdin"});
    ASSERT_TRUE(target.waitForOutput("ready"));
    expectNothingLeftAfter({kRecorder, "-p", std::to_string(target.pid()), "-o", (dir_ / "a.htr").string()},
                           [&](testing::BackgroundCommand&) { target.wait(); });
  }
  // An error while recording: the disk fills up.
  {
    const auto full = dir_ / "full";
    std::filesystem::create_directory(full);
    ASSERT_EQ(::mount("tmpfs", full.c_str(), "tmpfs", 0, "size=4k"), 0) << std::strerror(errno);
    testing::BackgroundCommand target({kSamples + "/cross_threads", "stdin"});
    ASSERT_TRUE(target.waitForOutput("ready"));
    expectNothingLeftAfter({kRecorder, "--time-resolution", "1ns", "-p", std::to_string(target.pid()), "-o",
                            (full / "b.htr").string()},
                           [&](testing::BackgroundCommand& recorder) {
                             target.closeInput();  // more than 4 KiB of events at exact times
                             const auto r = recorder.wait();
                             EXPECT_EQ(r.exitCode, 1) << r.err;
                             EXPECT_NE(r.err.find("disk full"), std::string::npos) << r.err;
                           });
    ::umount2(full.c_str(), MNT_DETACH);
  }
  // Killed while recording.
  {
    testing::BackgroundCommand target({kSamples + "/aged", "stdin"});
    ASSERT_TRUE(target.waitForOutput("ready"));
    expectNothingLeftAfter({kRecorder, "-p", std::to_string(target.pid()), "-o", (dir_ / "c.htr").string()},
                           [](testing::BackgroundCommand& recorder) { recorder.signal(SIGKILL); });
  }
  // An error after the programs were loaded and some probes attached, before the
  // recording started (too quick to look at the recorder's own fds while it runs).
  const uint32_t before = highestProgramId();
  const auto r = testing::runCommand({kRecorder, "-o", (dir_ / "d.htr").string(), "--alloc-fn",
                                      "missing_fn=malloc", "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("missing_fn"), std::string::npos) << r.err;
  // Another recorder on the machine may load or drop programs meanwhile: wait for a
  // moment when nothing of ours is left, rather than asserting on one snapshot.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool clean = unheldRecorderPrograms(before).empty();
  while (!clean && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    clean = unheldRecorderPrograms(before).empty();
  }
  EXPECT_TRUE(clean) << "a program stayed loaded after a failed start";
}

}  // namespace
}  // namespace heaptrail
