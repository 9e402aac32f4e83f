// Kernel semantics of the replay and the report on synthetic kernel traces: releases by
// any task, kfree of kmem_cache objects, krealloc, pages freed in other orders, frees of
// objects allocated before the recording, thread names; kernel frames symbolized from
// the kallsyms snapshot and, with a vmlinux (here a stand-in ELF), with file:line.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>

#include "analyzer/symbols/symbolizer.h"
#include "analyzer/kernel_frames.h"
#include "analyzer/leak_report.h"
#include "analyzer/replay.h"
#include "common/build_id.h"
#include "common/hex.h"
#include "schema/trace_reader.h"
#include "schema/trace_writer.h"
#include "tests/support/debuginfod_server.h"
#include "tests/support/synthetic_header.h"
#include "tests/support/temp_dir.h"

namespace heaptrail {
namespace {

using schema::EventKind;
constexpr uint64_t kStart = 1'000'000'000;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kText = 0xffffffff81000000ull;
constexpr uint32_t kPageStruct = 64;

struct Symbol {
  uint64_t address;
  std::string name;
};

class KernelTrace {
 public:
  KernelTrace(const std::filesystem::path& path, std::vector<Symbol> symbols, std::string buildId = "kernel-id-bytes!",
              uint64_t textStart = kText)
      : writer_(path) {
    writer_.writeHeader([&](schema::Header::Builder h) {
      testing::fillSyntheticHeader(h, {kStart, 0, {}});
      h.initTargets(0);
      auto k = h.initKernel();
      k.setBuildId(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(buildId.data()), buildId.size()));
      k.setRelease("6.1.0-test");
      k.setTextStart(textStart);
      k.setPageStructBytes(kPageStruct);
      auto s = k.initSymbols();
      auto addresses = s.initAddress(static_cast<unsigned>(symbols.size()));
      s.initModule(static_cast<unsigned>(symbols.size()));
      std::string names;
      for (unsigned i = 0; i < symbols.size(); ++i) {
        addresses.set(i, symbols[i].address);
        names += symbols[i].name + '\0';
      }
      s.setNames(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(names.data()), names.size()));
    });
  }
  KernelTrace& event(EventKind kind, uint64_t t, uint32_t pid, uint64_t address, uint64_t size, uint32_t stack = 0) {
    chunk_.addEvent({kind, kStart + t, pid, pid, address, size, stack, 0});
    return *this;
  }
  KernelTrace& stack(uint32_t id, std::vector<uint64_t> frames) {
    chunk_.addStack(id, frames);
    return *this;
  }
  KernelTrace& name(uint32_t pid, uint32_t tid, const std::string& comm) {
    chunk_.addThreadName({kStart, pid, tid, comm});
    return *this;
  }
  void finish(uint64_t end) {
    writer_.writeChunk(chunk_);
    writer_.writeFooter([&](schema::Footer::Builder f) {
      f.setEndTimeNs(kStart + end);
      f.setEndReason(schema::EndReason::INTERRUPTED);
    });
  }

 private:
  schema::TraceWriter writer_;
  schema::ChunkBuilder chunk_;
};

struct Result {
  analyzer::ReplayStats stats;
  analyzer::LeakReport report;
};

Result analyze(const std::filesystem::path& path, analyzer::ReportOptions options = {},
               const analyzer::KernelFrameOptions& kernelOptions = {{}, {}, {}, false},
               const analyzer::FrameResolver& resolver = {}) {
  schema::TraceReader reader(path);
  analyzer::Replay replay;
  replay.run(reader);
  const auto kernel = analyzer::KernelFrames::fromHeader(reader.header(), kernelOptions);
  options.top = 0;
  auto report = analyzer::buildReport(replay, options, resolver, kernel.get());
  if (kernel) report.warnings.insert(report.warnings.end(), kernel->notes().begin(), kernel->notes().end());
  return {replay.stats(), std::move(report)};
}

const analyzer::LeakGroup* groupOf(const analyzer::LeakReport& r, uint32_t stackId) {
  for (const auto& g : r.leaks)
    if (g.stack.stackId == stackId) return &g;
  return nullptr;
}

TEST(KernelReplay, SlabObjectsAreReleasedByAnyTaskAndKfreeTakesCacheObjects) {
  testing::TempDir dir;
  const auto path = dir.path() / "k.htr";
  KernelTrace t(path, {{kText, "_text"}, {kText + 0x100, "alloc_a"}, {kText + 0x200, "alloc_b"}});
  t.stack(1, {kText + 0x110}).stack(2, {kText + 0x210});
  t.name(100, 100, "app").name(100, 101, "app-worker").name(200, 200, "other");
  t.event(EventKind::KMALLOC, 1 * kMs, 100, 0xffff888000001000, 64, 1)
      .event(EventKind::KMEM_CACHE_ALLOC, 2 * kMs, 100, 0xffff888000002000, 256, 2)
      .event(EventKind::KMEM_CACHE_ALLOC, 3 * kMs, 100, 0xffff888000003000, 256, 2)
      // Released by another process (an RCU callback, a worker): still the same object.
      .event(EventKind::KFREE, 4 * kMs, 0, 0xffff888000001000, 0)
      // kfree of a kmem_cache object is fine since Linux 6.4: no mismatch.
      .event(EventKind::KFREE, 5 * kMs, 200, 0xffff888000002000, 0)
      // Allocated before the recording started: an unknown free, not an error.
      .event(EventKind::KMEM_CACHE_FREE, 6 * kMs, 100, 0xffff888000009000, 0)
      // krealloc to a bigger block: kmalloc of the new one, then kfree of the old.
      .event(EventKind::KMALLOC, 7 * kMs, 200, 0xffff888000004000, 32, 1)
      .event(EventKind::KMALLOC, 8 * kMs, 200, 0xffff888000005000, 128, 1)
      .event(EventKind::KFREE, 8 * kMs, 200, 0xffff888000004000, 0);
  t.finish(10 * kMs);

  const auto r = analyze(path);
  EXPECT_EQ(r.stats.unknownFrees, 1u);
  EXPECT_EQ(r.stats.mismatches, 0u);
  EXPECT_EQ(r.stats.doubleFrees, 0u);
  EXPECT_EQ(r.report.summary.outstandingBytes, 256u + 128u);
  const auto* cache = groupOf(r.report, 2);
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->pid, 100u);
  EXPECT_EQ(cache->count, 1u);
  EXPECT_EQ(cache->comm, "app") << "the main thread's name";
  EXPECT_EQ(cache->family, "kmem_cache_alloc");
  EXPECT_TRUE(cache->kernel);
  ASSERT_EQ(cache->stack.frames.size(), 1u);
  EXPECT_EQ(cache->stack.frames[0].symbol.outermost().function, "alloc_b");
  EXPECT_EQ(cache->stack.frames[0].module, "[kernel.kallsyms]");
  const auto* grown = groupOf(r.report, 1);
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(grown->pid, 200u);
  EXPECT_EQ(grown->bytes, 128u) << "krealloc's old block was released";

  // Per-process filters work offline, by pid and by thread name.
  analyzer::ReportOptions byComm;
  byComm.comm = "app-worker";
  EXPECT_EQ(analyze(path, byComm).report.summary.outstandingBytes, 256u);
  analyzer::ReportOptions byPid;
  byPid.pid = 200;
  EXPECT_EQ(analyze(path, byPid).report.summary.outstandingBytes, 128u);
}

TEST(KernelReplay, PagesAreRangesFreedInAnyOrder) {
  testing::TempDir dir;
  const auto path = dir.path() / "p.htr";
  KernelTrace t(path, {{kText, "_text"}});
  const uint64_t page0 = 0xffffea0000100000ull;
  const auto page = [&](uint64_t i) { return page0 + i * kPageStruct; };
  // Order 2 (4 pages) split and freed page by page; one page is kept.
  t.stack(1, {kText + 0x10}).stack(2, {kText + 0x20});
  t.event(EventKind::PAGE_ALLOC, 1 * kMs, 100, page(0), 4096 << 2, 1)
      .event(EventKind::PAGE_FREE, 2 * kMs, 0, page(0), 4096)
      .event(EventKind::PAGE_FREE, 2 * kMs, 0, page(1), 4096)
      .event(EventKind::PAGE_FREE, 2 * kMs, 0, page(3), 4096)
      // Four order-0 pages freed as one order-2 block.
      .event(EventKind::PAGE_ALLOC, 3 * kMs, 100, page(8), 4096)
      .event(EventKind::PAGE_ALLOC, 3 * kMs, 100, page(9), 4096)
      .event(EventKind::PAGE_ALLOC, 3 * kMs, 100, page(10), 4096)
      .event(EventKind::PAGE_ALLOC, 3 * kMs, 100, page(11), 4096)
      .event(EventKind::PAGE_FREE, 4 * kMs, 0, page(8), 4096 << 2)
      // Pages from before the recording.
      .event(EventKind::PAGE_FREE, 5 * kMs, 0, page(20), 4096 << 1)
      // A per-CPU area, and one freed.
      .event(EventKind::PERCPU_ALLOC, 6 * kMs, 100, 0x6000, 512, 2)
      .event(EventKind::PERCPU_ALLOC, 6 * kMs, 100, 0x7000, 256)
      .event(EventKind::PERCPU_FREE, 7 * kMs, 0, 0x7000, 0);
  t.finish(10 * kMs);

  const auto r = analyze(path);
  EXPECT_EQ(r.report.summary.outstandingBytes, 4096u + 512u);
  EXPECT_EQ(r.report.summary.outstandingAllocations, 2u);
  EXPECT_EQ(r.stats.unknownFrees, 1u);
  EXPECT_EQ(r.stats.reusedLiveAddresses, 0u);
  EXPECT_EQ(r.stats.peakBytes, 4096u * 4 + 4096u);
  bool sawPage = false, sawPercpu = false;
  for (const auto& g : r.report.leaks) {
    sawPage |= g.family == "mm_page_alloc" && g.bytes == 4096;
    sawPercpu |= g.family == "percpu_alloc" && g.bytes == 512;
  }
  EXPECT_TRUE(sawPage);
  EXPECT_TRUE(sawPercpu);
}

TEST(KernelReplay, HiddenSymbolsAndTracingFramesAreSaid) {
  testing::TempDir dir;
  const auto path = dir.path() / "h.htr";
  // The BPF program lies between the kernel's last symbol (_einittext) and a later pseudo
  // module's (ftrace_trampoline, as in Linux 6.18's kallsyms): in no symbol. It and
  // bpf_trace_run4 are the tracing machinery.
  KernelTrace t(path, {{kText, "_text"}, {kText + 0x100, "bpf_trace_run4"}, {kText + 0x200, "__kmalloc_noprof"},
                       {kText + 0x300, "alloc_pipe_info"}, {kText + 0x1000, "_einittext"},
                       {0xffffffffc0201000ull, "ftrace_trampoline"}});
  t.stack(1, {0xffffffffc0001234ull, kText + 0x120, kText + 0x210, kText + 0x310});
  t.event(EventKind::KMALLOC, 1 * kMs, 100, 0xffff888000001000, 64, 1);
  t.finish(2 * kMs);
  const auto r = analyze(path);
  ASSERT_EQ(r.report.leaks.size(), 1u);
  const auto& frames = r.report.leaks[0].stack.frames;
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].symbol.outermost().function, "__kmalloc_noprof");
  EXPECT_EQ(frames[1].symbol.outermost().function, "alloc_pipe_info");
  EXPECT_EQ(frames[1].offset, 0x310u);
}

// Where the stand-in vmlinux has `widget_alloc` and its first executable segment (no
// `_text` in a user-space ELF: the recorder's textStart is matched with that segment),
// as binutils says.
struct VmlinuxLayout {
  uint64_t widget, textSegment;
};
std::string commandOutput(const std::string& command) {
  std::array<char, 256> buf{};
  std::string out;
  std::unique_ptr<FILE, decltype(&pclose)> p(popen(command.c_str(), "r"), pclose);
  while (p && fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  return out;
}
VmlinuxLayout fakeVmlinuxLayout(const std::filesystem::path& vmlinux) {
  const auto run = commandOutput;
  return {std::stoull(run("nm " + vmlinux.string() + " | awk '$3==\"widget_alloc\"{print $1}'"), nullptr, 16),
          std::stoull(run("readelf -lW " + vmlinux.string() + " | awk '$1==\"LOAD\" && / E / {print $3; exit}'"),
                      nullptr, 16)};
}

// file:line of kernel frames from a vmlinux found by build-id (under a --debug-dir, in the
// .build-id layout) or given with --vmlinux, across a KASLR shift; checked against
// binutils' addr2line on the same ELF.
TEST(KernelReplay, VmlinuxGivesFileAndLineAcrossKaslr) {
  const std::filesystem::path vmlinux = HEAPTRAIL_FAKE_VMLINUX;
  const std::string id = common::readBuildId(vmlinux);
  ASSERT_FALSE(id.empty());
  symbols::Symbolizer symbolizer(symbols::SymbolizerOptions{});
  const analyzer::FrameResolver resolver = [&](const symbols::ModuleRef& module, uint64_t offset) {
    return symbolizer.resolve(module, offset);
  };

  const auto [widget, textSegment] = fakeVmlinuxLayout(vmlinux);
  const uint64_t kaslr = 0xffffffff80000000ull;  // running address - ELF address
  const uint64_t returnAddress = widget + kaslr + 9;
  const std::string expected = commandOutput("addr2line -e " + vmlinux.string() + " " + common::hexNumber(widget + 8));
  const auto colon = expected.rfind(':');
  ASSERT_NE(colon, std::string::npos);

  testing::TempDir dir;
  const auto path = dir.path() / "v.htr";
  KernelTrace t(path, {{textSegment + kaslr, "_text"}, {widget + kaslr, "widget_alloc"}}, id, textSegment + kaslr);
  t.stack(1, {returnAddress});
  t.event(EventKind::KMALLOC, 1 * kMs, 100, 0xffff888000001000, 64, 1);
  t.finish(2 * kMs);

  const auto hex = common::hexBytes(id);
  const auto debugDir = dir.path() / "debug";
  std::filesystem::create_directories(debugDir / ".build-id" / hex.substr(0, 2));
  std::filesystem::copy_file(vmlinux, debugDir / ".build-id" / hex.substr(0, 2) / (hex.substr(2) + ".debug"));

  for (const analyzer::KernelFrameOptions& options :
       {analyzer::KernelFrameOptions{{}, {debugDir}, {}, false}, analyzer::KernelFrameOptions{vmlinux, {}, {}, false}}) {
    const auto r = analyze(path, {}, options, resolver);
    ASSERT_EQ(r.report.leaks.size(), 1u);
    const auto& f = r.report.leaks[0].stack.frames.at(0);
    EXPECT_EQ(f.symbol.outermost().function, "widget_alloc");
    EXPECT_EQ(std::filesystem::path(f.symbol.outermost().file).filename(),
              std::filesystem::path(expected.substr(0, colon)).filename());
    EXPECT_EQ(f.symbol.outermost().line, std::stoul(expected.substr(colon + 1)));
    EXPECT_TRUE(r.report.warnings.empty()) << r.report.warnings.front();
  }

  // Another kernel's vmlinux is never used silently.
  testing::TempDir other;
  const auto wrong = other.path() / "w.htr";
  KernelTrace w(wrong, {{textSegment + kaslr, "_text"}, {widget + kaslr, "widget_alloc"}}, "another-kernel-id",
                textSegment + kaslr);
  w.stack(1, {returnAddress});
  w.event(EventKind::KMALLOC, 1 * kMs, 100, 0xffff888000001000, 64, 1);
  w.finish(2 * kMs);
  const auto r = analyze(wrong, {}, {vmlinux, {}, {}, false}, resolver);
  ASSERT_EQ(r.report.leaks.size(), 1u);
  EXPECT_EQ(r.report.leaks[0].stack.frames.at(0).symbol.outermost().function, "widget_alloc") << "kallsyms still names it";
  EXPECT_TRUE(r.report.leaks[0].stack.frames.at(0).symbol.outermost().file.empty());
  ASSERT_FALSE(r.report.warnings.empty());
  EXPECT_NE(r.report.warnings.back().find("not used"), std::string::npos);
}

// Without a local vmlinux, the one a debuginfod server has for the recorded build-id
// (Debian's serves its kernels' debug images); off with --no-debuginfod.
TEST(KernelReplay, VmlinuxFromDebuginfodServer) {
  const std::filesystem::path vmlinux = HEAPTRAIL_FAKE_VMLINUX;
  const std::string id = common::readBuildId(vmlinux);
  ASSERT_FALSE(id.empty());
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "served");
  std::filesystem::copy_file(vmlinux, dir.path() / "served" / "vmlinux");
  testing::DebuginfodServer server(dir.path() / "served", dir.path(), 1);
  ASSERT_EQ(server.error(), "");
  testing::ScopedEnv urls("DEBUGINFOD_URLS", server.url());
  testing::ScopedEnv cache("DEBUGINFOD_CACHE_PATH", (dir.path() / "cache").string());

  symbols::Symbolizer symbolizer(symbols::SymbolizerOptions{});
  const analyzer::FrameResolver resolver = [&](const symbols::ModuleRef& module, uint64_t offset) {
    return symbolizer.resolve(module, offset);
  };
  const auto [widget, textSegment] = fakeVmlinuxLayout(vmlinux);
  const uint64_t kaslr = 0xffffffff80000000ull;
  const auto path = dir.path() / "v.htr";
  KernelTrace t(path, {{textSegment + kaslr, "_text"}, {widget + kaslr, "widget_alloc"}}, id, textSegment + kaslr);
  t.stack(1, {widget + kaslr + 9});
  t.event(EventKind::KMALLOC, 1 * kMs, 100, 0xffff888000001000, 64, 1);
  t.finish(2 * kMs);

  const auto with = analyze(path, {}, {{}, {}, {}, false, true}, resolver);
  ASSERT_EQ(with.report.leaks.size(), 1u);
  const auto& f = with.report.leaks[0].stack.frames.at(0);
  EXPECT_EQ(f.symbol.outermost().function, "widget_alloc");
  EXPECT_EQ(std::filesystem::path(f.symbol.outermost().file).filename(), "fake_vmlinux.c");
  EXPECT_GT(f.symbol.outermost().line, 0u);

  const auto without = analyze(path, {}, {{}, {}, {}, false, false}, resolver);
  ASSERT_EQ(without.report.leaks.size(), 1u);
  EXPECT_TRUE(without.report.leaks[0].stack.frames.at(0).symbol.outermost().file.empty());
  ASSERT_FALSE(without.report.warnings.empty());
  EXPECT_NE(without.report.warnings.back().find("no vmlinux"), std::string::npos) << without.report.warnings.back();
}

}  // namespace
}  // namespace heaptrail
