// End to end, as root: record each sample with the real recorder and check the
// recorded events exactly against what the sample did.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "common/build_id.h"
#include "tests/support/recording_test.h"

namespace heaptrail {
namespace {

using schema::EventKind;
using testing::TraceContents;

using RecorderTest = testing::RecordingTest;

void expectWellFormed(const TraceContents& t) {
  EXPECT_EQ(t.end, schema::TraceEnd::Complete) << t.problem;
  EXPECT_TRUE(t.hasFooter);
  EXPECT_EQ(t.footerEvents, t.events.size());
  EXPECT_EQ(t.footerStacks, t.stacks.size());
  EXPECT_EQ(t.duplicateStackIds, 0u) << "a stack was written twice";
  for (const auto& e : t.events) {
    if (e.stackId) {
      EXPECT_TRUE(t.stacks.count(e.stackId)) << "event refers to unknown stack " << e.stackId;
    }
  }
  for (size_t i = 0; i < t.chunkSequences.size(); ++i) EXPECT_EQ(t.chunkSequences[i], i);
  EXPECT_TRUE(t.lostInChunks.empty() && t.footerLost.empty()) << "events were lost";
}

const schema::ProcessRecord* exitOf(const TraceContents& t, uint32_t pid) {
  for (const auto& p : t.processes)
    if (p.pid == pid && p.kind == schema::ProcessEventKind::EXIT) return &p;
  return nullptr;
}

TEST_F(RecorderTest, LeakySampleIsRecordedExactly) {
  const auto t = record({kSamples + "/leaky"});
  expectWellFormed(t);
  ASSERT_EQ(t.targetPids.size(), 1u);
  const uint32_t pid = t.targetPids[0];
  EXPECT_EQ(t.endReason, schema::EndReason::TARGET_EXITED);
  const auto* exit = exitOf(t, pid);
  ASSERT_NE(exit, nullptr);
  EXPECT_TRUE(exit->exitStatusKnown);
  EXPECT_EQ(exit->exitCode, 0);
  EXPECT_EQ(exit->signal, 0);
  for (const auto& e : t.events) EXPECT_EQ(e.pid, pid) << "an event of another process";
  EXPECT_NE(std::find(t.probedFunctions.begin(), t.probedFunctions.end(), "posix_memalign"),
            t.probedFunctions.end());

  // leak_plain: 3 x malloc(1001), called from leak_plain, which main called.
  const auto plain = t.eventsWithSize(1001);
  ASSERT_EQ(plain.size(), 3u);
  for (const auto& e : plain) {
    EXPECT_EQ(e.kind, EventKind::MALLOC);
    EXPECT_NE(e.address, 0u);
    EXPECT_EQ(e.tid, pid);
    // The immediate caller is there (a stack taken at malloc's entry would start at main).
    EXPECT_EQ(functionOf(t, e, 0), "leak_plain");
    EXPECT_EQ(functionOf(t, e, 1), "main");
  }
  EXPECT_EQ(plain[0].stackId, plain[1].stackId) << "same call site, same stack id";

  const auto loop = t.eventsWithSize(2002);
  ASSERT_EQ(loop.size(), 10u);
  for (const auto& e : loop) {
    EXPECT_EQ(functionOf(t, e, 0), "make_record");
    EXPECT_EQ(functionOf(t, e, 1), "leak_in_loop");
  }

  // churn: 100 mallocs, each freed before the next one.
  std::vector<uint64_t> churned;
  for (size_t i = 0; i < t.events.size(); ++i) {
    const auto& e = t.events[i];
    if (e.kind != EventKind::MALLOC || e.size != 3003) continue;
    EXPECT_EQ(functionOf(t, e, 0), "churn");
    ASSERT_LT(i + 1, t.events.size());
    EXPECT_EQ(t.events[i + 1].kind, EventKind::FREE);
    EXPECT_EQ(t.events[i + 1].address, e.address) << "free pairs with its malloc";
    churned.push_back(e.address);
  }
  EXPECT_EQ(churned.size(), 100u);

  // realloc chain: malloc 4004 -> realloc 4104 -> realloc 4204.
  const auto first = t.eventsWithSize(4004);
  ASSERT_EQ(first.size(), 1u);
  const auto r1 = t.eventsWithSize(4104);
  const auto r2 = t.eventsWithSize(4204);
  ASSERT_EQ(r1.size(), 2u);  // release of the old pointer, then the new one
  ASSERT_EQ(r2.size(), 2u);
  EXPECT_EQ(r1[0].kind, EventKind::REALLOC_RELEASE);
  EXPECT_EQ(r1[0].address, first[0].address);
  EXPECT_EQ(r1[1].kind, EventKind::REALLOC);
  EXPECT_EQ(r2[0].kind, EventKind::REALLOC_RELEASE);
  EXPECT_EQ(r2[0].address, r1[1].address);
  EXPECT_EQ(r2[1].kind, EventKind::REALLOC);
  EXPECT_NE(r2[1].address, 0u);
  EXPECT_EQ(functionOf(t, r2[1], 0), "realloc_chain");

  const auto calloc = t.eventsWithSize(5 * 1005);
  ASSERT_EQ(calloc.size(), 1u);
  EXPECT_EQ(calloc[0].kind, EventKind::CALLOC);
  EXPECT_EQ(functionOf(t, calloc[0], 0), "leak_calloc");

  const auto pm = t.eventsWithSize(6006);
  ASSERT_EQ(pm.size(), 1u);
  EXPECT_EQ(pm[0].kind, EventKind::POSIX_MEMALIGN);
  EXPECT_EQ(pm[0].address % 64, 0u) << "the pointer stored through memptr";
  EXPECT_EQ(functionOf(t, pm[0], 0), "leak_memalign");
  const auto aligned = t.eventsWithSize(6144);
  ASSERT_EQ(aligned.size(), 1u);
  const bool aliased = std::find(t.probedFunctions.begin(), t.probedFunctions.end(), "aligned_alloc") ==
                       t.probedFunctions.end();  // glibc < 2.38: aligned_alloc is memalign
  EXPECT_EQ(aligned[0].kind, aliased ? EventKind::MEMALIGN : EventKind::ALIGNED_ALLOC);
  EXPECT_EQ(aligned[0].address % 128, 0u);
  const auto ma = t.eventsWithSize(6272);
  ASSERT_EQ(ma.size(), 1u);
  EXPECT_EQ(ma[0].kind, EventKind::MEMALIGN);
  EXPECT_EQ(ma[0].address % 256, 0u);
  const auto va = t.eventsWithSize(6400);
  ASSERT_EQ(va.size(), 1u);
  EXPECT_EQ(va[0].kind, EventKind::VALLOC);

  std::set<uint64_t> freed;
  for (const auto& e : t.eventsOfKind(EventKind::FREE)) freed.insert(e.address);
  EXPECT_TRUE(freed.count(aligned[0].address));
  EXPECT_TRUE(freed.count(va[0].address));
  EXPECT_FALSE(freed.count(pm[0].address));
  EXPECT_FALSE(freed.count(ma[0].address));

  // A 5 MiB malloc is served by mmap inside malloc: recorded once, as malloc, and freed.
  const auto big = t.eventsWithSize(5 << 20);
  ASSERT_EQ(big.size(), 1u);
  EXPECT_EQ(big[0].kind, EventKind::MALLOC);
  EXPECT_TRUE(freed.count(big[0].address));
  const auto mmaps = t.eventsOfKind(EventKind::MMAP);
  ASSERT_EQ(mmaps.size(), 1u) << "malloc's internal mmap must not be recorded";
  EXPECT_EQ(mmaps[0].size, 16u * 4096);
  EXPECT_EQ(functionOf(t, mmaps[0], 0), "big_and_mapped");
  const auto munmaps = t.eventsOfKind(EventKind::MUNMAP);
  ASSERT_EQ(munmaps.size(), 1u) << "free's internal munmap must not be recorded";
  EXPECT_EQ(munmaps[0].address, mmaps[0].address + 12 * 4096);
  EXPECT_EQ(munmaps[0].size, 4u * 4096);

  // The executable's mapping is recorded from its exec, with its build-id.
  const auto buildId = common::readBuildId(kSamples + "/leaky");
  ASSERT_FALSE(buildId.empty());
  bool found = false;
  for (const auto& m : t.mappings)
    if (m.path == std::filesystem::canonical(kSamples + "/leaky").string() && m.executable) {
      found = true;
      EXPECT_EQ(m.buildId, buildId);
      EXPECT_EQ(m.source, schema::MappingSource::MMAP_EVENT);
    }
  EXPECT_TRUE(found) << "no mapping of the executable";
}

TEST_F(RecorderTest, ThreadsArePairedPerThread) {
  const auto t = record({kSamples + "/threads"});
  expectWellFormed(t);
  const uint32_t pid = t.targetPids.at(0);
  std::map<uint64_t, uint32_t> liveByAddress;  // address -> tid of the malloc
  std::map<uint32_t, int> mallocsPerThread, freesPerThread;
  for (const auto& e : t.events) {
    if (e.kind == EventKind::MALLOC && e.size == 8008) {
      EXPECT_NE(e.tid, pid) << "allocated by a worker thread, not main";
      EXPECT_EQ(functionOf(t, e, 0), "worker");
      liveByAddress[e.address] = e.tid;
      ++mallocsPerThread[e.tid];
    } else if (e.kind == EventKind::FREE && liveByAddress.count(e.address)) {
      EXPECT_EQ(liveByAddress[e.address], e.tid) << "each worker frees its own blocks";
      liveByAddress.erase(e.address);
      ++freesPerThread[e.tid];
    }
  }
  ASSERT_EQ(mallocsPerThread.size(), 4u);
  for (const auto& [tid, n] : mallocsPerThread) {
    EXPECT_EQ(n, 100) << "thread " << tid;
    EXPECT_EQ(freesPerThread[tid], 50) << "thread " << tid;
  }
  EXPECT_EQ(liveByAddress.size(), 200u);
  EXPECT_TRUE(t.eventsOfKind(EventKind::MMAP).empty()) << "thread stacks are libc's own mappings, not the program's";
}

TEST_F(RecorderTest, DlclosedPluginKeepsItsMappingAndBuildId) {
  const auto t = record({kSamples + "/plugin_host"});
  expectWellFormed(t);
  const auto leaks = t.eventsWithSize(10010);
  ASSERT_EQ(leaks.size(), 2u);
  const std::string plugin = std::filesystem::canonical(kSamples + "/libhtplugin.so").string();
  for (const auto& e : leaks) {
    const uint64_t address = t.stacks.at(e.stackId).at(0) - 1;
    const auto* m = t.mappingAt(e.pid, address, e.timeNs);
    ASSERT_NE(m, nullptr) << "the plugin's mapping is in the trace";
    EXPECT_EQ(m->path, plugin);
    EXPECT_EQ(m->buildId, common::readBuildId(plugin));
    EXPECT_EQ(m->source, schema::MappingSource::MMAP_EVENT);
    EXPECT_GT(m->timeNs, t.startTimeNs) << "mapped after the recording started";
    EXPECT_EQ(functionOf(t, e, 0), "plugin_make");
    EXPECT_EQ(functionOf(t, e, 1), "plugin_leak");
  }
}

TEST_F(RecorderTest, ProgramThatNeverAllocatesGivesValidTrace) {
  const auto t = record({kSamples + "/noalloc"});
  expectWellFormed(t);
  const auto* exit = exitOf(t, t.targetPids.at(0));
  ASSERT_NE(exit, nullptr);
  EXPECT_EQ(exit->exitCode, 0);
  EXPECT_TRUE(t.eventsOfKind(EventKind::MALLOC).empty());
  EXPECT_FALSE(t.mappings.empty());
}

TEST_F(RecorderTest, ShortLivedProgramIsCoveredFromExec) {
  const auto t = record({kSamples + "/quick"});
  expectWellFormed(t);
  const auto leak = t.eventsWithSize(11011);
  ASSERT_EQ(leak.size(), 1u);
  EXPECT_EQ(functionOf(t, leak[0], 0), "main");
  bool exec = false;
  for (const auto& p : t.processes) exec |= p.kind == schema::ProcessEventKind::EXEC && p.command == "quick";
  EXPECT_TRUE(exec) << "the exec is recorded";
}

TEST_F(RecorderTest, CommandKeepsItsOutputAndExitStatus) {
  const auto t = record({"/bin/sh", "-c", "echo hello; exit 3"});
  EXPECT_EQ(last_.out, "hello\n") << "the command's stdout is untouched, the recorder's is empty";
  EXPECT_NE(last_.err.find("events"), std::string::npos) << "the summary goes to stderr";
  const auto* exit = exitOf(t, t.targetPids.at(0));
  ASSERT_NE(exit, nullptr);
  EXPECT_EQ(exit->exitCode, 3);
  EXPECT_NE(last_.err.find("status 3"), std::string::npos) << last_.err;

  const auto killed = record({"/bin/sh", "-c", "kill -SEGV $$"});
  const auto* signalled = exitOf(killed, killed.targetPids.at(0));
  ASSERT_NE(signalled, nullptr);
  EXPECT_EQ(signalled->signal, SIGSEGV);
}

TEST_F(RecorderTest, AttachToRunningProcessAndStopOnItsExit) {
  testing::BackgroundCommand target({kSamples + "/aged", "stdin"});
  ASSERT_TRUE(target.waitForOutput("ready")) << "the old block is allocated";
  testing::BackgroundCommand recorder({kRecorder, "-p", std::to_string(target.pid()), "-o", output().string()});
  ASSERT_TRUE(recorder.waitForError("recording pid")) << "the recorder is attached";
  target.closeInput();  // now the young block
  const auto result = recorder.wait();
  ASSERT_EQ(result.exitCode, 0) << result.err;
  const auto t = testing::loadTrace(output());
  expectWellFormed(t);
  EXPECT_EQ(t.endReason, schema::EndReason::TARGET_EXITED);
  EXPECT_TRUE(t.eventsWithSize(9009).empty()) << "allocated before the recording started";
  const auto young = t.eventsWithSize(9109);
  ASSERT_EQ(young.size(), 1u);
  EXPECT_EQ(functionOf(t, young[0], 0), "leak_young");
  // The memory map at start comes from /proc/PID/maps, with build-ids.
  bool snapshot = false;
  for (const auto& m : t.mappings)
    if (m.source == schema::MappingSource::PROC_MAPS && m.path.find("libc.so") != std::string::npos) {
      snapshot = true;
      EXPECT_EQ(m.buildId.size(), 20u);
    }
  EXPECT_TRUE(snapshot);
  target.wait();
}

TEST_F(RecorderTest, DurationAndSignalsEndTheRecordingWithAFooter) {
  testing::BackgroundCommand target({kSamples + "/aged", "30"});
  const auto start = std::chrono::steady_clock::now();
  const auto timed = testing::runCommand(
      {kRecorder, "-p", std::to_string(target.pid()), "-o", output("d.htr").string(), "--duration", "1s"});
  EXPECT_EQ(timed.exitCode, 0) << timed.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(testing::loadTrace(output("d.htr")).endReason, schema::EndReason::DURATION);

  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    const auto file = output("s" + std::to_string(sig) + ".htr");
    testing::BackgroundCommand recorder({kRecorder, "-p", std::to_string(target.pid()), "-o", file.string()});
    ASSERT_TRUE(recorder.waitForError("recording pid"));
    recorder.signal(sig);
    const auto r = recorder.wait();
    EXPECT_EQ(r.exitCode, 0) << r.err;
    const auto t = testing::loadTrace(file);
    EXPECT_EQ(t.end, schema::TraceEnd::Complete) << "signal " << sig;
    EXPECT_EQ(t.endReason, schema::EndReason::INTERRUPTED);
  }
}

TEST_F(RecorderTest, ErrorsAreOneLineAndLeaveNoFile) {
  // A pid that cannot exist (above pid_max).
  auto r = testing::runCommand({kRecorder, "-p", "2147483647", "-o", output().string()});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("no such process"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(std::filesystem::exists(output()));

  r = testing::runCommand({kRecorder, "-o", output().string(), "--", "/nonexistent/program"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("/nonexistent/program"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(output()));

  r = testing::runCommand({kRecorder, "-o", "/nonexistent-dir/t.htr", "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("cannot write /nonexistent-dir/t.htr"), std::string::npos) << r.err;

  r = testing::runCommand({kRecorder, "--obj", "/nonexistent/libc.so", "-o", output().string(), "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("/nonexistent/libc.so"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(output()));

  r = testing::runCommand({kRecorder, "--bogus"});
  EXPECT_EQ(r.exitCode, 2);

  // Without privileges: says which capabilities are needed.
  r = testing::runCommand({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "--inh-caps=-all", kRecorder, "-o", "/tmp/never.htr", "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_NE(r.err.find("CAP_BPF"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CAP_PERFMON"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists("/tmp/never.htr"));
}

TEST_F(RecorderTest, KilledRecorderLeavesATraceReadableToItsLastChunk) {
  testing::BackgroundCommand target({kSamples + "/aged", "30"});
  testing::BackgroundCommand recorder({kRecorder, "-p", std::to_string(target.pid()), "-o", output().string()});
  ASSERT_TRUE(recorder.waitForError("recording pid"));
  // Long enough for the chunks a recorder flushes at least once a second.
  std::this_thread::sleep_for(std::chrono::milliseconds(2300));
  recorder.signal(SIGKILL);
  recorder.wait();
  const auto t = testing::loadTrace(output());
  EXPECT_EQ(t.end, schema::TraceEnd::Truncated);
  EXPECT_FALSE(t.hasFooter);
  EXPECT_EQ(t.targetPids.at(0), static_cast<uint32_t>(target.pid()));
  EXPECT_GE(t.chunkSequences.size(), 2u) << "a chunk is flushed at least once a second";
  EXPECT_FALSE(t.mappings.empty()) << "the memory map written at start survived";
  // `heaptrail info` says the recording was cut off.
  const auto info = testing::runCommand({HEAPTRAIL_BIN, "info", output().string()});
  EXPECT_EQ(info.exitCode, 0) << info.err;
  EXPECT_NE(info.out.find("cut off"), std::string::npos) << info.out;
}

TEST_F(RecorderTest, LostEventsAreCountedExactlyByKind) {
  // The same deterministic program, once with room for everything, once with a ring
  // buffer far too small and a recorder that is stopped while the program allocates:
  // what is recorded plus what is counted lost must be the same.
  const auto full = record({kSamples + "/threads", "0.8"});
  ASSERT_TRUE(full.footerLost.empty());
  const auto file = output("tiny.htr");
  testing::BackgroundCommand recorder(
      {kRecorder, "-o", file.string(), "--ringbuf-size", "4k", "--", kSamples + "/threads", "0.8"});
  ASSERT_TRUE(recorder.waitForError("recording pid"));
  recorder.signal(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  recorder.signal(SIGCONT);
  const auto result = recorder.wait();
  ASSERT_EQ(result.exitCode, 0) << result.err;
  EXPECT_NE(result.err.find("lost"), std::string::npos) << result.err;
  const auto tiny = testing::loadTrace(file);
  EXPECT_EQ(tiny.end, schema::TraceEnd::Complete);
  uint64_t lost = 0;
  for (const auto& [kind, n] : tiny.footerLost) lost += n;
  ASSERT_GT(lost, 0u) << "a 4 KiB ring buffer that nobody reads must overflow";
  EXPECT_EQ(tiny.lostInChunks, tiny.footerLost) << "chunk deltas add up to the footer's totals";
  for (auto kind : {EventKind::MALLOC, EventKind::FREE}) {
    const auto recorded = tiny.eventsOfKind(kind).size();
    const auto it = tiny.footerLost.find(kind);
    const uint64_t lostOfKind = it == tiny.footerLost.end() ? 0 : it->second;
    EXPECT_EQ(recorded + lostOfKind, full.eventsOfKind(kind).size()) << "kind " << static_cast<int>(kind);
  }
}

TEST_F(RecorderTest, SizeFilterAndStackDepth) {
  const auto t = record({kSamples + "/leaky"}, {"--min-size", "4000", "--max-size", "7000", "--stack-depth", "1"});
  expectWellFormed(t);
  EXPECT_TRUE(t.eventsWithSize(1001).empty());
  EXPECT_TRUE(t.eventsWithSize(3003).empty());
  EXPECT_TRUE(t.eventsWithSize(5 << 20).empty());
  EXPECT_EQ(t.eventsWithSize(6006).size(), 1u);
  EXPECT_EQ(t.eventsWithSize(4004).size(), 1u);
  for (const auto& [id, frames] : t.stacks) EXPECT_EQ(frames.size(), 1u);
  schema::TraceReader reader(output());
  EXPECT_EQ(reader.header().getOptions().getMinSize(), 4000u);
  EXPECT_EQ(reader.header().getOptions().getStackDepth(), 1u);
}

TEST_F(RecorderTest, StaticallyLinkedProgramIsItsOwnAllocator) {
  const auto t = record({kSamples + "/quick_static"});
  expectWellFormed(t);
  EXPECT_EQ(t.allocatorObject, std::filesystem::canonical(kSamples + "/quick_static").string());
  const auto leak = t.eventsWithSize(11011);
  ASSERT_EQ(leak.size(), 1u);
  EXPECT_EQ(functionOf(t, leak[0], 0), "main");
}

TEST_F(RecorderTest, ObjOptionChoosesTheAllocator) {
  const std::string libc = testing::runCommand({"/usr/bin/find", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                                                "-maxdepth", "1", "-name", "libc.so.6"}).out;
  ASSERT_FALSE(libc.empty());
  const std::string path = libc.substr(0, libc.find('\n'));
  const auto t = record({kSamples + "/quick"}, {"--obj", path});
  EXPECT_EQ(t.allocatorObject, path);
  EXPECT_EQ(t.eventsWithSize(11011).size(), 1u);
  // An object without an allocator is refused with a reason.
  const auto r = testing::runCommand({kRecorder, "-o", output("x.htr").string(), "--obj", "/bin/true", "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("no allocator found"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(output("x.htr")));
}

}  // namespace
}  // namespace heaptrail
