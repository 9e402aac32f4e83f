// --follow-forks: every process of the tree recorded from its first instruction, every
// exit recorded once, the recording over when the last process is, and nothing probed
// outside the tree (issue 12; issue 11, item 2).
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "tests/support/recording_test.h"

namespace heaptrail {
namespace {

using schema::EventKind;
using schema::ProcessEventKind;
using testing::TraceContents;

using FollowForksTest = testing::RecordingTest;

std::map<uint32_t, int> exitsPerPid(const TraceContents& t) {
  std::map<uint32_t, int> exits;
  for (const auto& p : t.processes)
    if (p.kind == ProcessEventKind::EXIT) ++exits[p.pid];
  return exits;
}

TEST_F(FollowForksTest, AForkedChildIsRecordedFromItsFirstAllocation) {
  // The child's first act after fork() is the leak: it must be held until its probes
  // are in.
  const auto t = record({kSamples + "/fork_leak"}, {"-f"});
  const uint32_t parent = t.targetPids.at(0);
  const auto child = t.eventsWithSize(12012);
  ASSERT_EQ(child.size(), 1u);
  EXPECT_NE(child[0].pid, parent);
  EXPECT_EQ(functionOf(t, child[0]), "main");
  const auto parentLeak = t.eventsWithSize(12112);
  ASSERT_EQ(parentLeak.size(), 1u);
  EXPECT_EQ(parentLeak[0].pid, parent);
  bool forked = false;
  for (const auto& p : t.processes) forked |= p.kind == ProcessEventKind::FORK && p.pid == child[0].pid && p.parentPid == parent;
  EXPECT_TRUE(forked);
}

TEST_F(FollowForksTest, AnExecedProgramIsHookedBeforeItRuns) {
  // A static program brings its own allocator, found at its exec: its first (and only)
  // allocation is there.
  const auto t = record({"/bin/sh", "-c", kSamples + "/quick_static; " + kSamples + "/quick; true"}, {"-f"});
  const auto leaks = t.eventsWithSize(11011);
  ASSERT_EQ(leaks.size(), 2u);
  std::set<uint32_t> pids;
  for (const auto& e : leaks) {
    EXPECT_NE(e.pid, t.targetPids.at(0));
    EXPECT_EQ(functionOf(t, e), "main");
    pids.insert(e.pid);
  }
  EXPECT_EQ(pids.size(), 2u);
}

TEST_F(FollowForksTest, AParentExitingFirstEndsTheRecordingWithItsLastChild) {
  // Issue 11, item 2: the exit of the started command was written again and again while
  // its child lived.
  const auto t = record({"/bin/sh", "-c", kSamples + "/aged 0.5 & exit 0"}, {"-f"});
  EXPECT_EQ(t.endReason, schema::EndReason::TARGET_EXITED);
  const auto exits = exitsPerPid(t);
  EXPECT_GE(exits.size(), 2u);
  for (const auto& [pid, n] : exits) EXPECT_EQ(n, 1) << "pid " << pid;
  EXPECT_EQ(t.eventsWithSize(9109).size(), 1u) << "the child's late leak, after its parent's exit";
  EXPECT_LT(t.processes.size(), 10u);
}

TEST_F(FollowForksTest, TwoHundredChildrenAtOnce) {
  const auto t = record({"/bin/sh", "-c", "for i in $(seq 200); do " + kSamples + "/quick & done; exit 0"}, {"-f"});
  EXPECT_EQ(t.endReason, schema::EndReason::TARGET_EXITED);
  std::set<uint32_t> leakers;
  for (const auto& e : t.eventsWithSize(11011)) leakers.insert(e.pid);
  EXPECT_EQ(leakers.size(), 200u) << "every child, from its first allocation";
  const auto exits = exitsPerPid(t);
  for (uint32_t pid : leakers) EXPECT_EQ(exits.count(pid), 1u) << pid;
  for (const auto& [pid, n] : exits) EXPECT_EQ(n, 1) << "pid " << pid;
  EXPECT_TRUE(t.footerLost.empty());
}

// The ids of the BPF programs a process holds (its own fds: never another user's).
std::vector<uint32_t> programsHeldBy(pid_t pid) {
  std::vector<uint32_t> ids;
  const std::string fdDir = "/proc/" + std::to_string(pid) + "/fdinfo";
  DIR* d = ::opendir(fdDir.c_str());
  if (!d) return ids;
  while (const dirent* entry = ::readdir(d)) {
    std::ifstream in(fdDir + "/" + entry->d_name);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("prog_id:", 0) == 0) ids.push_back(static_cast<uint32_t>(std::stoul(line.substr(8))));
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

uint64_t runCount(const std::vector<uint32_t>& ids) {
  uint64_t runs = 0;
  for (uint32_t id : ids) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0) runs += info.run_cnt;
    ::close(fd);
  }
  return runs;
}

TEST_F(FollowForksTest, AProcessOutsideTheTreeIsNeverProbed) {
  // Run counts of the recorder's own programs, while a bystander allocates: they must
  // not move (the probes used to be system wide, filtered in BPF).
  const int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
  ASSERT_GE(stats, 0) << "BPF statistics: " << std::strerror(errno);
  // The target leaks once, says "ready" (the recorder's stdout is its stdout), and waits.
  testing::BackgroundCommand recorder({kRecorder, "-f", "-o", output().string(), "--", kSamples + "/aged", "stdin"});
  ASSERT_TRUE(recorder.waitForOutput("ready"));
  const auto ids = programsHeldBy(recorder.pid());
  ASSERT_EQ(ids.size(), 2u);
  const uint64_t before = runCount(ids);
  EXPECT_GT(before, 0u) << "the target's own calls ran the programs";
  const auto bystander = testing::runCommand({kSamples + "/leaky"});
  ASSERT_EQ(bystander.exitCode, 0);
  EXPECT_EQ(runCount(ids), before) << "a bystander's allocations reached the recorder's programs";
  recorder.closeInput();
  EXPECT_EQ(recorder.wait().exitCode, 0);
  EXPECT_EQ(testing::loadTrace(output()).eventsWithSize(9109).size(), 1u) << "the target's late leak";
  ::close(stats);
}

}  // namespace
}  // namespace heaptrail
