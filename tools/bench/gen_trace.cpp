// gen_trace: writes a large, realistic heaptrail trace without recording anything, for
// the replay benchmark. Churn of a long-running multi-threaded program: a few thousand
// allocation stacks over four modules, block addresses reused LIFO like a real
// allocator's free lists, a live set of ~100k blocks, malloc/calloc/realloc/free and a
// small steady leak; chunks of 65536 events as heaptrail-record writes them.
//
//   gen_trace OUTPUT [EVENTS [STACKS]]     (defaults 50000000, 4000)
//
// Deterministic: the same arguments give the same trace. Prints "events=N stacks=S".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "schema/chunk_builder.h"
#include "schema/trace_writer.h"
#include "tests/support/synthetic_header.h"

namespace {

using heaptrail::schema::EventKind;
namespace schema = heaptrail::schema;

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

struct Module {
  const char* path;
  uint64_t start, end;
};
// Executable mappings of the synthetic process (the files need not exist: the replay
// benchmark does not symbolize).
const Module kModules[] = {
    {"/usr/bin/synthetic-server", 0x55d000001000, 0x55d000801000},
    {"/usr/lib/x86_64-linux-gnu/libsynthetic-core.so.1", 0x7f1000001000, 0x7f1000401000},
    {"/usr/lib/x86_64-linux-gnu/libstdc++.so.6", 0x7f2000001000, 0x7f2000201000},
    {"/usr/lib/x86_64-linux-gnu/libc.so.6", 0x7f3000028000, 0x7f30001bd000},
};

constexpr uint32_t kPid = 4242;
constexpr uint32_t kThreads = 4;
constexpr size_t kChunkEvents = 1 << 16;

size_t mixedSize(Rng& rng) {
  const uint64_t b = rng.below(64);
  if (b < 40) return 8 + rng.below(120);
  if (b < 56) return 128 + rng.below(896);
  if (b < 62) return 1024 + rng.below(7168);
  return 8192 + rng.below(57344);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: gen_trace OUTPUT [EVENTS [STACKS]]\n");
    return 2;
  }
  const uint64_t totalEvents = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 50'000'000;
  const uint32_t stackCount = argc > 3 ? static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 0)) : 4000;
  Rng rng{0x243F6A8885A308D3ull};

  // Stacks: 6..30 frames; the outer frames shared (main, thread entry), inner ones
  // spread over the modules, like real call trees.
  std::vector<std::vector<uint64_t>> stacks(stackCount + 1);
  for (uint32_t id = 1; id <= stackCount; ++id) {
    auto& frames = stacks[id];
    const size_t depth = 6 + rng.below(25);
    for (size_t f = 0; f < depth; ++f) {
      const Module& m = f + 3 >= depth ? kModules[0] : kModules[rng.below(3)];
      frames.push_back(m.start + rng.below(m.end - m.start));
    }
  }
  // A skewed popularity: a few stacks make most allocations.
  auto pickStack = [&]() -> uint32_t {
    const uint64_t r = rng.next();
    if ((r & 3) != 0) return 1 + static_cast<uint32_t>((r >> 8) % (stackCount < 64 ? stackCount : 64));
    return 1 + static_cast<uint32_t>((r >> 8) % stackCount);
  };

  schema::TraceWriter writer(argv[1]);
  schema::EncodingOptions encoding;  // as heaptrail-record's defaults
  encoding.timeResolutionNs = schema::kDefaultTimeResolutionNs;
  writer.setEncoding(encoding);
  uint64_t now = 1'000'000'000;
  writer.writeHeader([&](schema::Header::Builder h) {
    heaptrail::testing::fillSyntheticHeader(h, {now, kPid, {kModules[0].path}, "gen_trace", "6.18.0-synthetic"});
    auto o = h.getOptions();
    o.setAllocatorObject(kModules[3].path);
    o.setRingBufferBytes(4u << 20);
    auto fns = o.initProbedFunctions(4);
    fns.set(0, "malloc");
    fns.set(1, "free");
    fns.set(2, "calloc");
    fns.set(3, "realloc");
  });

  schema::ChunkBuilder chunk;
  chunk.setEncoding(writer.encoding());
  for (const Module& m : kModules) {
    schema::MappingRecord rec;
    rec.timeNs = now;
    rec.pid = kPid;
    rec.start = m.start;
    rec.end = m.end;
    rec.fileOffset = m.start & 0xfff000;
    rec.path = m.path;
    rec.source = schema::MappingSource::PROC_MAPS;
    rec.executable = true;
    chunk.addMapping(rec);
  }
  std::vector<bool> stackWritten(stackCount + 1, false);

  // Live blocks: address -> nothing; free addresses reused LIFO per size class.
  struct Live {
    uint64_t address;
    uint64_t size;
  };
  std::vector<Live> live;
  live.reserve(1 << 18);
  std::vector<std::vector<uint64_t>> freeLists(32);
  uint64_t heapTop = 0x55d100000000;
  auto classOf = [](uint64_t size) {
    unsigned c = 0;
    while ((16ull << c) < size && c < 31) ++c;
    return c;
  };
  auto obtain = [&](uint64_t size) {
    auto& list = freeLists[classOf(size)];
    if (!list.empty()) {
      const uint64_t a = list.back();
      list.pop_back();
      return a;
    }
    const uint64_t a = heapTop;
    heapTop += (16ull << classOf(size)) + 16;
    return a;
  };
  auto give = [&](uint64_t address, uint64_t size) { freeLists[classOf(size)].push_back(address); };

  uint64_t events = 0, leaked = 0;
  auto add = [&](EventKind kind, uint64_t address, uint64_t size, uint32_t stackId) {
    now += 50 + rng.below(300);
    schema::EventRecord e;
    e.kind = kind;
    e.timeNs = now;
    e.pid = kPid;
    e.tid = kPid + static_cast<uint32_t>(rng.below(kThreads));
    e.address = address;
    e.size = size;
    e.stackId = stackId;
    if (stackId && !stackWritten[stackId]) {
      chunk.addStack(stackId, stacks[stackId]);
      stackWritten[stackId] = true;
    }
    chunk.addEvent(e);
    ++events;
    if (chunk.eventCount() >= kChunkEvents) writer.writeChunk(chunk);
  };

  const size_t liveTarget = 100'000;
  while (events < totalEvents) {
    const uint64_t r = rng.below(100);
    const bool allocate = live.size() < liveTarget / 2 || (live.size() < liveTarget * 2 && (rng.next() & 1));
    if (allocate) {
      const uint64_t size = mixedSize(rng);
      const uint64_t address = obtain(size);
      const uint32_t stackId = pickStack();
      add(r < 93 ? EventKind::MALLOC : EventKind::CALLOC, address, size, stackId);
      if (rng.below(2000) == 0) {
        ++leaked;  // never freed: the steady leak the analyzer should find
      } else {
        live.push_back({address, size});
      }
    } else {
      const size_t i = rng.below(live.size());
      const Live block = live[i];
      live[i] = live.back();
      live.pop_back();
      if (r < 5) {
        // realloc: release of the old block at entry, new block at return.
        const uint64_t size = block.size * 2 > 65536 ? block.size : block.size * 2;
        add(EventKind::REALLOC_RELEASE, block.address, size, 0);
        give(block.address, block.size);
        const uint64_t address = obtain(size);
        add(EventKind::REALLOC, address, size, pickStack());
        live.push_back({address, size});
      } else {
        add(EventKind::FREE, block.address, 0, 0);
        give(block.address, block.size);
      }
    }
  }
  writer.writeChunk(chunk);
  writer.writeFooter([&](schema::Footer::Builder f) {
    f.setEndTimeNs(now + 1000);
    f.setEndReason(schema::EndReason::TARGET_EXITED);
    f.setEventsTotal(events);
    f.setStacksTotal(stackCount);
  });
  writer.sync();
  std::printf("events=%llu stacks=%u leaked=%llu bytes=%llu\n", static_cast<unsigned long long>(events),
              stackCount, static_cast<unsigned long long>(leaked),
              static_cast<unsigned long long>(writer.bytesWritten()));
  return 0;
}
