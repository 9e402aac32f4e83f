// Every allocation path a real program takes (issue: C++ operators, nested calls,
// custom allocators, child processes, threads): each allocation is recorded exactly
// once, by the function the program called, with the program's call site on top.
#include <gtest/gtest.h>

#include <unistd.h>

#include <map>
#include <set>

#include "tests/support/recording_test.h"

namespace heaptrail {
namespace {

using schema::EventKind;
using testing::TraceContents;

using AllocationPathsTest = testing::RecordingTest;

struct Expected {
  uint64_t size;
  EventKind kind;
  std::string caller;    // mangled, as nm prints it
  std::string function;  // the operator's symbol
};

TEST_F(AllocationPathsTest, EveryCxxOperatorIsRecordedOnceFromItsCallSite) {
  const auto t = record({kSamples + "/cpp_operators"});
  const std::vector<Expected> leaks = {
      {48, EventKind::OPERATOR_NEW, "_Z8leak_newv", "_Znwm"},
      {100, EventKind::OPERATOR_NEW_ARRAY, "_Z14leak_new_arrayv", "_Znam"},
      {56, EventKind::OPERATOR_NEW, "_Z16leak_new_nothrowv", "_ZnwmRKSt9nothrow_t"},
      {120, EventKind::OPERATOR_NEW_ARRAY, "_Z22leak_new_array_nothrowv", "_ZnamRKSt9nothrow_t"},
      {192, EventKind::OPERATOR_NEW, "_Z16leak_new_alignedv", "_ZnwmSt11align_val_t"},
      {384, EventKind::OPERATOR_NEW_ARRAY, "_Z22leak_new_array_alignedv", "_ZnamSt11align_val_t"},
  };
  for (const auto& want : leaks) {
    const auto events = t.eventsWithSize(want.size);
    ASSERT_EQ(events.size(), 1u) << "size " << want.size << ": the malloc under the operator is not recorded again";
    EXPECT_EQ(events[0].kind, want.kind) << want.size;
    EXPECT_EQ(t.functionName(events[0]), want.function) << want.size;
    EXPECT_EQ(functionOf(t, events[0]), want.caller) << want.size;
  }
  // Released through the matching delete: recorded once as the delete, not again as free.
  const std::vector<std::pair<uint64_t, EventKind>> freed = {
      {72, EventKind::OPERATOR_DELETE}, {140, EventKind::OPERATOR_DELETE_ARRAY}, {320, EventKind::OPERATOR_DELETE}};
  for (const auto& [size, releaseKind] : freed) {
    const auto allocs = t.eventsWithSize(size);
    ASSERT_EQ(allocs.size(), 1u) << size;
    EXPECT_EQ(functionOf(t, allocs[0]), "_Z8balancedv");
    int releases = 0;
    for (const auto& e : t.events) {
      if (e.address != allocs[0].address || e.timeNs < allocs[0].timeNs) continue;
      if (e.kind == EventKind::FREE || e.kind == EventKind::OPERATOR_DELETE || e.kind == EventKind::OPERATOR_DELETE_ARRAY) {
        ++releases;
        EXPECT_EQ(e.kind, releaseKind) << size;
      }
    }
    EXPECT_EQ(releases, 1) << "size " << size << " released exactly once";
  }
  // The sized delete is named as such.
  bool sized = false;
  for (const auto& e : t.eventsOfKind(EventKind::OPERATOR_DELETE)) sized |= t.functionName(e) == "_ZdlPvm";
  EXPECT_TRUE(sized);
}

TEST_F(AllocationPathsTest, NewInsideLibraryWithoutFramePointers) {
  const auto t = record({kSamples + "/nofp_main"});
  const auto widgets = t.eventsWithSize(88);
  ASSERT_EQ(widgets.size(), 3u);
  for (const auto& e : widgets) {
    EXPECT_EQ(e.kind, EventKind::OPERATOR_NEW);
    // The frame right above the allocator is the library function that wrote `new`
    // (BCC memleak, probing malloc inside libstdc++, loses it).
    EXPECT_EQ(functionOf(t, e, 0), "nofp_make_widgets");
  }
}

TEST_F(AllocationPathsTest, MismatchedFamiliesAreRecordedWithWhatWasCalled) {
  const auto t = record({kSamples + "/cpp_mismatch"});
  const auto find = [&](uint64_t size) {
    const auto events = t.eventsWithSize(size);
    EXPECT_EQ(events.size(), 1u) << size;
    return events.at(0);
  };
  const auto releaseOf = [&](const schema::EventRecord& alloc) {
    for (const auto& e : t.events)
      if (e.address == alloc.address && e.timeNs >= alloc.timeNs && e.size == 0) return e;
    return schema::EventRecord{};
  };
  const auto array = find(160);
  EXPECT_EQ(array.kind, EventKind::OPERATOR_NEW_ARRAY);
  EXPECT_EQ(releaseOf(array).kind, EventKind::OPERATOR_DELETE);
  const auto mallocd = find(168);
  EXPECT_EQ(mallocd.kind, EventKind::MALLOC);
  EXPECT_EQ(releaseOf(mallocd).kind, EventKind::OPERATOR_DELETE);
  const auto object = find(176);
  EXPECT_EQ(object.kind, EventKind::OPERATOR_NEW);
  EXPECT_EQ(releaseOf(object).kind, EventKind::FREE);
}

TEST_F(AllocationPathsTest, SixteenThreadsFreeingEachOthersBlocks) {
  const auto t = record({kSamples + "/cross_threads"});
  std::map<uint64_t, uint32_t> live;  // address -> allocating tid
  std::set<uint32_t> producers, consumers;
  int crossFrees = 0;
  for (const auto& e : t.events) {
    if (e.kind == EventKind::MALLOC && e.size == 13013) {
      EXPECT_EQ(functionOf(t, e), "produce");
      live[e.address] = e.tid;
      producers.insert(e.tid);
    } else if (e.kind == EventKind::FREE && live.count(e.address)) {
      EXPECT_NE(live[e.address], e.tid) << "freed by a consumer thread";
      consumers.insert(e.tid);
      live.erase(e.address);
      ++crossFrees;
    }
  }
  EXPECT_EQ(producers.size(), 8u);
  EXPECT_EQ(consumers.size(), 8u);
  EXPECT_EQ(crossFrees, 8 * 199);
  EXPECT_EQ(live.size(), 8u) << "one leaked block per producer";
}

TEST_F(AllocationPathsTest, CustomPoolAllocator) {
  const auto t = record({kSamples + "/pool"}, {"--alloc-fn", "pool_alloc=malloc", "--alloc-fn", "pool_free=free"});
  const auto allocs = t.eventsWithSize(14014);
  ASSERT_EQ(allocs.size(), 6u);
  std::set<uint64_t> freed;
  for (const auto& e : t.eventsOfKind(EventKind::FREE))
    if (t.functionName(e) == "pool_free") freed.insert(e.address);
  EXPECT_EQ(freed.size(), 4u);
  for (const auto& e : allocs) {
    EXPECT_EQ(e.kind, EventKind::MALLOC);
    EXPECT_EQ(t.functionName(e), "pool_alloc");
    EXPECT_EQ(functionOf(t, e), "make_entry");
    const auto& f = t.functions.at(e.function);
    EXPECT_TRUE(f.custom);
  }
  int leaked = 0;
  for (const auto& e : allocs) leaked += !freed.count(e.address);
  EXPECT_EQ(leaked, 2);

  // A custom function that does not exist is an error, not a silent no-op.
  const auto r = testing::runCommand({kRecorder, "-o", (dir_ / "x.htr").string(), "--alloc-fn",
                                      "no_such_pool=malloc", "--", kSamples + "/pool"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("no_such_pool"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "x.htr"));
  EXPECT_EQ(testing::runCommand({kRecorder, "--alloc-fn", "pool=bogus", "--", "/bin/true"}).exitCode, 2);
}

TEST_F(AllocationPathsTest, StaticallyLinkedAllocatorNeedsNoOptions) {
  const auto t = record({kSamples + "/quick_static"});
  const auto leak = t.eventsWithSize(11011);
  ASSERT_EQ(leak.size(), 1u);
  EXPECT_EQ(functionOf(t, leak[0]), "main");
  EXPECT_EQ(t.functions.at(leak[0].function).object, std::filesystem::canonical(kSamples + "/quick_static").string());
}

TEST_F(AllocationPathsTest, ShellScriptStartingALeakyChild) {
  const auto t = record({kSamples + "/leaky_script.sh"}, {"--follow-forks"});
  EXPECT_TRUE(t.followForks);
  const uint32_t shell = t.targetPids.at(0);
  const auto plain = t.eventsWithSize(1001);
  ASSERT_EQ(plain.size(), 3u) << "the child's leaks are recorded";
  const uint32_t child = plain[0].pid;
  EXPECT_NE(child, shell);
  for (const auto& e : plain) {
    EXPECT_EQ(e.pid, child);
    EXPECT_EQ(functionOf(t, e), "leak_plain");
  }
  bool forked = false, execd = false, exited = false;
  for (const auto& p : t.processes) {
    forked |= p.kind == schema::ProcessEventKind::FORK && p.pid == child && p.parentPid == shell;
    // The command name comes from the kernel; the full command line is read from /proc
    // when the recorder sees the exec, which a process this short may not outlive.
    execd |= p.kind == schema::ProcessEventKind::EXEC && p.pid == child && p.command == "leaky";
    exited |= p.kind == schema::ProcessEventKind::EXIT && p.pid == child;
  }
  EXPECT_TRUE(forked);
  EXPECT_TRUE(execd);
  EXPECT_TRUE(exited);
  // The child's own memory map (its executable) is in the trace under its pid.
  bool mapped = false;
  for (const auto& m : t.mappings) mapped |= m.pid == child && m.path.ends_with("/samples/leaky");
  EXPECT_TRUE(mapped);

  // Without --follow-forks only the shell is recorded.
  const auto alone = record({kSamples + "/leaky_script.sh"});
  EXPECT_TRUE(alone.eventsWithSize(1001).empty());
  for (const auto& e : alone.events) EXPECT_EQ(e.pid, alone.targetPids.at(0));
}

TEST_F(AllocationPathsTest, ShellThatExecsTheProgramRecordsIt) {
  // `sh -c ./app` replaces the shell by the program: same process, new image.
  const auto t = record({"/bin/sh", "-c", "exec " + kSamples + "/quick"});
  const auto leak = t.eventsWithSize(11011);
  ASSERT_EQ(leak.size(), 1u);
  EXPECT_EQ(leak[0].pid, t.targetPids.at(0));
  EXPECT_EQ(functionOf(t, leak[0]), "main");
}

TEST_F(AllocationPathsTest, DeepStackWithLargeFramesIsComplete) {
  // The frames beyond the recorder's 2 KiB copy of the stack top are read one by one.
  const auto t = record({kSamples + "/deep"});
  const auto leak = t.eventsWithSize(15015);
  ASSERT_EQ(leak.size(), 1u);
  const auto& frames = t.stacks.at(leak[0].stackId);
  ASSERT_GE(frames.size(), 25u);
  for (size_t i = 0; i < 24; ++i) EXPECT_EQ(functionOf(t, leak[0], i), "recurse") << "frame " << i;
  EXPECT_EQ(functionOf(t, leak[0], 24), "main");
}

}  // namespace
}  // namespace heaptrail
