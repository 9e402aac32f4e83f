// Writes synthetic.htr and synthetic-kernel.htr: version-1 traces with every event kind
// and every kind of record, for the v1 reading test (tests/trace_versions_test.cpp).
// Compiled and run once with the v1 writer (commit 485e7fb + the reader limits); kept so
// that what the fixtures hold can be read here. Not built by CMake: with a later writer
// it would write a later version.
#include <string>
#include <vector>

#include "schema/chunk_builder.h"
#include "schema/trace_writer.h"
#include "tests/support/synthetic_header.h"

using namespace heaptrail;
using schema::EventKind;

namespace {

constexpr uint64_t kStart = 1'000'000'000, kMs = 1'000'000;
constexpr uint32_t kPid = 4242;

void userTrace(const char* path) {
  schema::TraceWriter writer(path);
  writer.writeHeader([](schema::Header::Builder h) {
    testing::fillSyntheticHeader(h, {kStart, kPid, {"./app", "--flag"}, "v1-fixture", "6.1.0-test"});
    auto o = h.getOptions();
    o.setAllocatorObject("/lib/libc.so.6");
    o.setStackDepth(64);
    o.setRingBufferBytes(2 << 20);
    o.setReleaseStacks(true);
  });
  schema::ChunkBuilder c;
  c.addMapping({kStart, kPid, 0x400000, 0x410000, 0, "/app", std::string("\x12\x34\x56", 3),
                schema::MappingSource::PROC_MAPS, true, 11});
  c.addMapping({kStart, kPid, 0x7f0000000000, 0x7f0000100000, 0x1000, "/lib/libc.so.6", "",
                schema::MappingSource::PROC_MAPS, true, 12});
  c.addProcessEvent({kStart, kPid, schema::ProcessEventKind::EXEC, 0, "app", false, 0, 0, false, {"./app", "--flag"}});
  c.addFunction({1, "malloc", EventKind::MALLOC, "/lib/libc.so.6", false, 0, "push %r12", true, 0x9a000});
  c.addFunction({2, "free", EventKind::FREE, "/lib/libc.so.6", false, 3, "je", true, 0x9b000});
  c.addFunction({3, "_Znwm", EventKind::OPERATOR_NEW, "/usr/lib/libstdc++.so.6", false});
  c.addFunction({4, "_ZdlPv", EventKind::OPERATOR_DELETE, "/usr/lib/libstdc++.so.6", false});
  c.addFunction({5, "pool_alloc", EventKind::MALLOC, "/app", true});
  for (uint32_t s = 1; s <= 12; ++s) {
    std::vector<uint64_t> frames;
    for (uint32_t f = 0; f < s; ++f) frames.push_back(0x401000 + 0x10 * s + 0x100 * f);
    c.addStack(s, frames);
  }
  uint64_t t = kStart + kMs;
  auto ev = [&](EventKind k, uint64_t a, uint64_t size, uint32_t stack, uint16_t fn = 0, uint32_t tid = kPid) {
    t += 1234;
    c.addEvent({k, t, kPid, tid, a, size, stack, fn});
  };
  // Every user-space kind, with leaks, frees, a double free, an unknown free, realloc
  // in place and moved, a failed realloc, mmap/munmap in part, libc's own frees.
  ev(EventKind::MALLOC, 0x10000, 100, 1, 1);
  ev(EventKind::CALLOC, 0x10100, 200, 2);
  ev(EventKind::REALLOC_RELEASE, 0x10000, 300, 0);
  ev(EventKind::REALLOC, 0x10200, 300, 3);
  ev(EventKind::REALLOCARRAY, 0x10400, 64, 4);
  ev(EventKind::POSIX_MEMALIGN, 0x11000, 4096, 5);
  ev(EventKind::ALIGNED_ALLOC, 0x12000, 512, 6);
  ev(EventKind::MEMALIGN, 0x13000, 256, 7);
  ev(EventKind::VALLOC, 0x14000, 4096, 8);
  ev(EventKind::PVALLOC, 0x15000, 100, 9);
  ev(EventKind::FREE, 0x10100, 0, 10, 2);
  ev(EventKind::FREE, 0x10100, 0, 10, 2);  // double free
  ev(EventKind::FREE, 0x99990, 0, 10, 2);  // unknown
  ev(EventKind::MMAP, 0x7e0000000000, 1 << 20, 11);
  ev(EventKind::MUNMAP, 0x7e0000000000, 1 << 16, 0);
  ev(EventKind::OPERATOR_NEW, 0x20000, 48, 12, 3, kPid + 1);
  ev(EventKind::OPERATOR_NEW_ARRAY, 0x20100, 480, 12, 0, kPid + 1);
  ev(EventKind::OPERATOR_DELETE, 0x20100, 0, 0, 4, kPid + 1);  // delete of new[]: mismatch
  ev(EventKind::OPERATOR_DELETE_ARRAY, 0x20000, 0, 0, 0, kPid + 1);
  ev(EventKind::LIBC_FREE, 0x13000, 0, 0);
  ev(EventKind::LIBC_FREE, 0x77777, 0, 0);  // the allocator's own
  c.addLost(EventKind::FREE, 2);
  c.addThreadName({kStart, kPid, kPid + 1, "worker"});
  writer.writeChunk(c);
  // A busier chunk: churn with some leaks and a realloc that fails, across two threads.
  for (uint32_t i = 0; i < 3000; ++i) {
    const uint64_t a = 0x100000 + 0x40 * (i % 97);
    ev(EventKind::MALLOC, a, 16 + (i % 13) * 8, 1 + i % 12, 1, kPid + (i & 1));
    if (i % 10 != 0) ev(EventKind::FREE, a, 0, 0, 2, kPid + (i & 1));
  }
  ev(EventKind::REALLOC_RELEASE, 0x12000, 1ull << 40, 0);
  ev(EventKind::REALLOC, 0, 1ull << 40, 3);  // failed: the old block stays
  writer.writeChunk(c);
  c.addProcessEvent({t + kMs, kPid, schema::ProcessEventKind::EXIT, 0, "", true, 0, 0, false, {}});
  writer.writeChunk(c);
  writer.writeFooter([&](schema::Footer::Builder f) {
    f.setEndTimeNs(t + 2 * kMs);
    f.setEndReason(schema::EndReason::TARGET_EXITED);
    f.setEventsTotal(3000);
    auto lost = f.initLost(1);
    lost[0].setKind(EventKind::FREE);
    lost[0].setCount(2);
  });
}

void kernelTrace(const char* path) {
  constexpr uint64_t kText = 0xffffffff81000000ull;
  schema::TraceWriter writer(path);
  writer.writeHeader([&](schema::Header::Builder h) {
    testing::fillSyntheticHeader(h, {kStart, 0, {}, "v1-fixture", "6.1.0-test"});
    h.initTargets(0);
    auto k = h.initKernel();
    const std::string id = "kernel-id-bytes!";
    k.setBuildId(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(id.data()), id.size()));
    k.setRelease("6.1.0-test");
    k.setTextStart(kText);
    k.setPageStructBytes(64);
    k.setKernelStackDepth(32);
    auto ev = k.initEvents(4);
    ev.set(0, "kmalloc");
    ev.set(1, "cache");
    ev.set(2, "page");
    ev.set(3, "percpu");
    auto s = k.initSymbols();
    const char* names[] = {"_text", "do_eventfd", "pipe_write", "kmalloc_trace"};
    auto addresses = s.initAddress(4);
    s.initModule(4);
    std::string all;
    for (unsigned i = 0; i < 4; ++i) {
      addresses.set(i, kText + 0x1000 * i);
      all += std::string(names[i]) + '\0';
    }
    s.setNames(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(all.data()), all.size()));
  });
  schema::ChunkBuilder c;
  c.addStack(1, std::vector<uint64_t>{kText + 0x1010, kText + 0x2020});
  c.addStack(2, std::vector<uint64_t>{kText + 0x3030});
  c.addThreadName({kStart, 100, 100, "nginx"});
  c.addThreadName({kStart, 200, 201, "kworker/0:1"});
  uint64_t t = kStart + kMs;
  auto ev = [&](EventKind k, uint32_t pid, uint64_t a, uint64_t size, uint32_t stack) {
    t += 777;
    c.addEvent({k, t, pid, pid, a, size, stack, 0});
  };
  ev(EventKind::KMALLOC, 100, 0xffff888000001000, 192, 1);
  ev(EventKind::KMALLOC, 100, 0xffff888000002000, 64, 1);
  ev(EventKind::KFREE, 200, 0xffff888000002000, 0, 0);
  ev(EventKind::KMEM_CACHE_ALLOC, 100, 0xffff888000003000, 256, 2);
  ev(EventKind::KMEM_CACHE_FREE, 201, 0xffff888000009000, 0, 0);  // allocated before recording
  ev(EventKind::PAGE_ALLOC, 100, 0xffffea0000001000, 4096 << 2, 2);
  ev(EventKind::PAGE_FREE, 200, 0xffffea0000001040, 4096, 0);  // one page of the block
  ev(EventKind::PERCPU_ALLOC, 100, 0x6000, 512, 1);
  ev(EventKind::PERCPU_FREE, 100, 0x6000, 0, 0);
  ev(EventKind::KMALLOC, 200, 0xffff888000004000, 32, 2);
  writer.writeChunk(c);
  writer.writeFooter([&](schema::Footer::Builder f) {
    f.setEndTimeNs(t + kMs);
    f.setEndReason(schema::EndReason::INTERRUPTED);
  });
}

}  // namespace

int main() {
  userTrace("synthetic.htr");
  kernelTrace("synthetic-kernel.htr");
  return 0;
}
