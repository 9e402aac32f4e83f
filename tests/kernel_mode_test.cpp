// heaptrail-record --kernel on a sample that makes the kernel allocate for it in a known
// way (samples/kernel_objects.c: N eventfds, N pipes, N UNIX socket pairs, half of each
// closed again). Only the sample's pid is looked at: the rest of the machine allocates
// kernel memory all the time.
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include "analyzer/cli.h"
#include "analyzer/kernel_frames.h"
#include "analyzer/leak_report.h"
#include "analyzer/replay.h"
#include "schema/trace_reader.h"
#include "tests/support/recording_test.h"

namespace heaptrail {
namespace {

using analyzer::LeakGroup;
using analyzer::LeakReport;

constexpr int kObjects = 16;

bool hasFunction(const analyzer::StackReport& stack, const std::string& name) {
  return std::any_of(stack.frames.begin(), stack.frames.end(),
                     [&](const analyzer::Frame& f) { return f.symbol.outermost().function == name; });
}

// The slab allocator's own bookkeeping (e.g. the per-slab object-extension vector
// allocated when a new slab is made) runs inside the caller's allocation, so its stack
// passes through the caller too; whether it happens depends on the slab's state, not on
// the sample. Only what `function` itself asked for counts: no slab frame above it.
bool allocatedBy(const std::vector<std::string>& functions, const std::string& name) {
  for (const auto& f : functions) {
    if (f == name) return true;
    if (f.find("slab") != std::string::npos) return false;
  }
  return false;
}

bool allocatedBy(const analyzer::StackReport& stack, const std::string& name) {
  std::vector<std::string> functions;
  for (const auto& f : stack.frames) functions.push_back(f.symbol.outermost().function);
  return allocatedBy(functions, name);
}

// Outstanding allocations of `family` that `function` asked for (kernel stack).
uint64_t outstandingThrough(const LeakReport& report, const std::string& family, const std::string& function) {
  uint64_t count = 0;
  for (const auto& g : report.leaks)
    if (g.family == family && allocatedBy(g.stack, function)) count += g.count;
  return count;
}

class KernelModeTest : public testing::RecordingTest {
 protected:
  // Runs the sample, records it with `options` (plus "-p PID" when `attach`), and returns
  // its pid once the recording has ended while the sample still holds its objects. `gap`
  // separates the eventfds from the pipes and sockets (for age filters); `whileRecording`
  // runs in the test's own process once the recorder is ready.
  uint32_t recordSample(std::vector<std::string> options, bool attach, std::chrono::milliseconds gap = {},
                        const std::function<void()>& whileRecording = {}) {
    testing::BackgroundCommand sample({kSamples + "/kernel_objects", std::to_string(kObjects)});
    EXPECT_TRUE(sample.waitForOutput("ready"));
    std::vector<std::string> argv = {kRecorder, "--kernel", "-o", output().string()};
    argv.insert(argv.end(), options.begin(), options.end());
    if (attach) argv.insert(argv.end(), {"-p", std::to_string(sample.pid())});
    testing::BackgroundCommand recorder(argv);
    EXPECT_TRUE(recorder.waitForError("recording"));
    if (whileRecording) whileRecording();
    sample.writeInput("\n");
    EXPECT_TRUE(sample.waitForOutput("eventfds"));
    if (gap.count() > 0) std::this_thread::sleep_for(gap);  // age, not a handshake
    sample.writeInput("\n");
    EXPECT_TRUE(sample.waitForOutput("holding"));
    recorder.signal(SIGINT);
    last_ = recorder.wait();
    EXPECT_EQ(last_.exitCode, 0) << last_.err;
    sample.closeInput();
    sample.wait();
    return static_cast<uint32_t>(sample.pid());
  }

  struct Analysis {
    LeakReport report;
    // Allocation events of the pid by (family, function on the stack), over the whole trace.
    std::map<std::pair<std::string, std::string>, uint64_t> allocated;
  };

  Analysis analyze(uint32_t pid, uint64_t sinceNs = 0) {
    schema::TraceReader reader(output());
    analyzer::Replay replay;
    replay.run(reader);
    const auto kernel = analyzer::KernelFrames::fromHeader(reader.header(), {});
    EXPECT_NE(kernel, nullptr) << "the trace has kernel info";
    analyzer::ReportOptions options;
    options.pid = pid;
    options.top = 0;
    options.sinceNs = sinceNs;
    Analysis a;
    a.report = analyzer::buildReport(replay, options, {}, kernel.get());

    const auto t = testing::loadTrace(output());
    for (const auto& e : t.events) {
      if (e.pid != pid || !schema::isAllocation(e.kind) || e.stackId == 0) continue;
      const auto& frames = t.stacks.at(e.stackId);
      std::vector<std::string> functions;
      for (const uint64_t address : frames)
        if (kernel->isKernelAddress(address)) functions.push_back(kernel->resolve(address, {}).symbol.outermost().function);
      for (const auto& f : std::set<std::string>(functions.begin(), functions.end()))
        if (allocatedBy(functions, f)) a.allocated[{std::string(schema::eventKindName(e.kind)), f}]++;
    }
    return a;
  }
};

TEST_F(KernelModeTest, OutstandingKernelObjectsOfAProcessWithTheirSyscallPaths) {
  const uint32_t pid = recordSample({"--ringbuf-size", "32M"}, true);  // no loss on a loaded machine
  const auto a = analyze(pid);
  const auto& r = a.report;
  ASSERT_FALSE(r.leaks.empty()) << last_.err;
  EXPECT_EQ(r.summary.lostTotal, 0u) << "a loss would make these counts unreliable";

  // One eventfd_ctx (kmalloc in do_eventfd) per eventfd; one pipe_inode_info (kmalloc in
  // alloc_pipe_info) per pipe; one struct sock (kmem_cache_alloc in sk_alloc via
  // unix_create1) per socket, two per pair. Half of each is still open.
  EXPECT_EQ(outstandingThrough(r, "kmalloc", "do_eventfd"), kObjects / 2u);
  EXPECT_EQ(outstandingThrough(r, "kmalloc", "alloc_pipe_info") % (kObjects / 2u), 0u);
  EXPECT_GE(outstandingThrough(r, "kmalloc", "alloc_pipe_info"), kObjects / 2u);
  EXPECT_EQ(outstandingThrough(r, "kmem_cache_alloc", "unix_create1"), 2u * kObjects / 2);
  // The other half was allocated during the recording and freed: twice as many were made.
  EXPECT_EQ((a.allocated.at({"kmalloc", "do_eventfd"})), 2u * outstandingThrough(r, "kmalloc", "do_eventfd"));
  EXPECT_EQ((a.allocated.at({"kmalloc", "alloc_pipe_info"})), 2u * outstandingThrough(r, "kmalloc", "alloc_pipe_info"));
  EXPECT_EQ((a.allocated.at({"kmem_cache_alloc", "unix_create1"})),
            2u * outstandingThrough(r, "kmem_cache_alloc", "unix_create1"));

  for (const auto& g : r.leaks) {
    EXPECT_TRUE(g.kernel);
    EXPECT_EQ(g.pid, pid);
    EXPECT_EQ(g.comm, "kernel_objects");
  }
  // The syscall path is named, down to the system call and, since the process was
  // recorded (-p), into its user stack (libc's wrapper).
  const auto pipeGroup = std::find_if(r.leaks.begin(), r.leaks.end(), [](const LeakGroup& g) {
    return g.family == "kmalloc" && allocatedBy(g.stack, "alloc_pipe_info");
  });
  ASSERT_NE(pipeGroup, r.leaks.end());
  EXPECT_TRUE(hasFunction(pipeGroup->stack, "do_syscall_64"));
  const auto userFrame = std::find_if(pipeGroup->stack.frames.begin(), pipeGroup->stack.frames.end(),
                                      [](const analyzer::Frame& f) { return f.module.find("libc.so") != std::string::npos; });
  EXPECT_NE(userFrame, pipeGroup->stack.frames.end()) << "the user stack follows the kernel stack";
}

// Every report format on a kernel recording: the syscall path of the pipes, without the
// tracing machinery's frames (the BPF program, bpf_trace_run*).
TEST_F(KernelModeTest, EveryReportFormatShowsTheKernelPaths) {
  const uint32_t pid = recordSample({}, true);
  const auto run = [&](std::vector<std::string> args) {
    std::ostringstream out, err;
    const int code = analyzer::heaptrailMain(args, out, err);
    EXPECT_EQ(code, 0) << err.str();
    return out.str();
  };
  const std::string trace = output().string(), p = std::to_string(pid);
  for (const std::string format : {"text", "json", "folded", "html"}) {
    SCOPED_TRACE(format);
    const std::string out = run({"analyze", trace, "--pid", p, "--top", "0", "--format", format});
    EXPECT_NE(out.find("alloc_pipe_info"), std::string::npos) << out.substr(0, 2000);
    EXPECT_EQ(out.find("bpf_trace_run"), std::string::npos) << out.substr(0, 2000);
    EXPECT_EQ(out.find("_einittext"), std::string::npos) << out.substr(0, 2000);
  }
  const std::string folded = run({"analyze", trace, "--pid", p, "--top", "0", "--format", "folded"});
  EXPECT_NE(folded.find("do_syscall_64;"), std::string::npos) << "root first: " << folded.substr(0, 2000);
  const auto pprof = output().parent_path() / "k.pb.gz";
  run({"analyze", trace, "--pid", p, "--format", "pprof", "-o", pprof.string()});
  std::ifstream in(pprof, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), 0x1fu) << "gzip";
  const std::string diff = run({"diff", trace, trace, "--pid", p});
  EXPECT_EQ(diff.find("bpf_trace_run"), std::string::npos) << diff.substr(0, 2000);
}

TEST_F(KernelModeTest, WholeMachineFilteredByPidAndAge) {
  // Kernel mode alone records every process; the sample is picked out offline. The
  // eventfds are made 1.5 s before the pipes and sockets. The test's own process, which
  // is not the sample, opens one eventfd of its own while recording and keeps it.
  int own = -1;
  const uint32_t pid = recordSample({"--kernel-events", "kmalloc,cache"}, false, std::chrono::milliseconds(1500),
                                    [&] { own = ::eventfd(0, EFD_CLOEXEC); });
  ASSERT_GE(own, 0);
  const auto all = analyze(pid);
  EXPECT_EQ(outstandingThrough(all.report, "kmalloc", "do_eventfd"), kObjects / 2u);
  EXPECT_GE(outstandingThrough(all.report, "kmalloc", "alloc_pipe_info"), kObjects / 2u);
  const auto self = analyze(static_cast<uint32_t>(::getpid()));
  ::close(own);
  EXPECT_EQ(outstandingThrough(self.report, "kmalloc", "do_eventfd"), 1u) << "processes other than the sample are recorded too";

  const auto old = analyze(pid, 1'000'000'000);
  EXPECT_EQ(outstandingThrough(old.report, "kmalloc", "do_eventfd"), kObjects / 2u);
  EXPECT_EQ(outstandingThrough(old.report, "kmalloc", "alloc_pipe_info"), 0u) << "younger than 1 s";
  EXPECT_EQ(outstandingThrough(old.report, "kmem_cache_alloc", "unix_create1"), 0u) << "younger than 1 s";
  for (const auto& g : old.report.leaks) EXPECT_GE(g.youngestAgeNs, 1'000'000'000u);
  for (const auto& g : all.report.leaks)
    for (const auto& f : g.stack.frames) EXPECT_EQ(f.module, "[kernel.kallsyms]") << "no user stacks without -p";
}

TEST_F(KernelModeTest, TraceKeepsWhatOfflineSymbolizationNeeds) {
  const uint32_t pid = recordSample({"--kernel-events", "percpu,page"}, false);
  schema::TraceReader reader(output());
  ASSERT_TRUE(reader.header().hasKernel());
  const auto k = reader.header().getKernel();
  EXPECT_EQ(std::string(k.getRelease().cStr()), testing::loadTrace(output()).kernelRelease);
  EXPECT_GT(k.getBuildId().size(), 0u) << "from /sys/kernel/notes";
  EXPECT_GT(k.getPageStructBytes(), 0u);
  std::vector<std::string> events;
  for (auto e : k.getEvents()) events.emplace_back(e.cStr());
  EXPECT_EQ(events, (std::vector<std::string>{"page", "percpu"}));
  if (!k.getSymbolsHidden()) {
    EXPECT_GT(k.getSymbols().getAddress().size(), 1000u);
    EXPECT_NE(k.getTextStart(), 0u);
  }
  // The sample touches fresh pages of its arrays (anonymous page faults) while recorded.
  const auto t = testing::loadTrace(output());
  const auto pages = t.eventsOfKind(schema::EventKind::PAGE_ALLOC);
  EXPECT_TRUE(std::any_of(pages.begin(), pages.end(), [&](const auto& e) { return e.pid == pid; }));
  EXPECT_TRUE(t.eventsOfKind(schema::EventKind::KMALLOC).empty()) << "not asked for";
}

}  // namespace
}  // namespace heaptrail
