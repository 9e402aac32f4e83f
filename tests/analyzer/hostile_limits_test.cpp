// What a crafted trace must not be able to make the reader and analyzer do: recurse
// without bound, allocate without bound, wait forever, or pass one trace off as two
// (README, "Traces from strangers"). Traces are built by tests/support/crafted_trace.h.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/support/analyzer_cli.h"
#include "analyzer/replay.h"
#include "schema/record_readers.h"
#include "schema/trace_format.h"
#include "schema/trace_reader.h"
#include "tests/support/crafted_trace.h"
#include "tests/support/temp_dir.h"

namespace heaptrail::testing {
namespace {

constexpr uint64_t kStart = 1'000'000'000;
constexpr uint64_t kMs = 1'000'000;

// Runs `body` on a thread with a small stack (256 KiB): unbounded recursion crashes
// there for certain instead of depending on the main thread's stack limit.
void onSmallStack(std::function<void()> body) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  auto* fn = new std::function<void()>(std::move(body));
  ASSERT_EQ(pthread_create(&thread, &attr,
                           [](void* p) -> void* {
                             std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(p));
                             (*f)();
                             return nullptr;
                           },
                           fn),
            0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

uint64_t peakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

TEST(HostileLimits, ManyRecordsOfTheWrongKindDoNotRecurse) {
  TempDir dir;
  {
    CraftedTrace t(dir / "t.htr");
    t.extraHeaders(50000).malloc(kStart + kMs, 0x1000, 100);
    t.footer(kStart + 2 * kMs);
  }
  uint64_t chunks = 0, damage = 0;
  uint64_t live = 0;
  schema::TraceEnd end = schema::TraceEnd::Reading;
  onSmallStack([&] {
    schema::TraceReader reader(dir / "t.htr");
    analyzer::Replay replay;
    replay.run(reader);
    chunks = replay.stats().chunks;
    damage = replay.damageCount();
    live = replay.stats().events;
    end = replay.end();
  });
  EXPECT_EQ(chunks, 1u);
  EXPECT_EQ(live, 1u);
  EXPECT_EQ(damage, 50000u);
  EXPECT_EQ(end, schema::TraceEnd::Complete);
  const auto info = runHeaptrail({"info", (dir / "t.htr").string()});
  EXPECT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("damage:           50000 damaged part(s) skipped (first: unexpected record kind"),
            std::string::npos)
      << info.out;
}

// A record whose decompressed size exceeds the documented limit is skipped with a
// one-line warning, and what comes after it is still read.
TEST(HostileLimits, RecordLargerThanTheLimitIsSkipped) {
  TempDir dir;
  {
    CraftedTrace t(dir / "t.htr");
    t.malloc(kStart + kMs, 0x1000, 100).hugeMappingPath(kStart + 2 * kMs, schema::kMaxRecordBytes + (1 << 20));
    t.malloc(kStart + 3 * kMs, 0x2000, 200).footer(kStart + 4 * kMs);
  }
  const auto size = std::filesystem::file_size(dir / "t.htr");
  EXPECT_LT(size, 64u * 1024) << "the crafted record compresses well";
  const uint64_t before = peakRssBytes();
  const auto a = runHeaptrail({"analyze", (dir / "t.htr").string(), "--no-symbols", "--format", "json"});
  EXPECT_LT(peakRssBytes() - before, 2 * schema::kMaxRecordBytes) << "memory follows the limit";
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("\"outstanding_bytes\": 300"), std::string::npos) << "chunks around the bomb are read: " << a.out;
  EXPECT_NE(a.out.find("larger than the limit of 64 MiB per record"), std::string::npos) << a.out;
}

// The same limit holds for a frame that does not say how large it is (streamed): it is
// cut off as soon as it has produced more than the limit.
TEST(HostileLimits, FrameWithoutASizeIsStoppedAtTheLimit) {
  TempDir dir;
  {
    CraftedTrace t(dir / "t.htr");
    t.malloc(kStart + kMs, 0x1000, 100);
  }
  appendBytes(dir / "t.htr", lyingZstdFrame(0, schema::kMaxRecordBytes + (1 << 20)));
  {
    CraftedTrace second(dir / "b.htr");
    second.malloc(kStart + 3 * kMs, 0x2000, 200);  // a chunk after the bomb, read again
  }
  const std::string b = readBytes(dir / "b.htr");
  appendBytes(dir / "t.htr", b.substr(b.find("\x28\xb5\x2f\xfd", schema::kPreambleSize + 1)));
  EXPECT_LT(std::filesystem::file_size(dir / "t.htr"), 8u * 1024);
  const uint64_t before = peakRssBytes();
  schema::TraceReader reader(dir / "t.htr");
  analyzer::Replay replay;
  replay.run(reader);
  // The buffer grows by doubling up to the limit: at most about 1.5 limits at once.
  // (Not measurable under AddressSanitizer, whose allocator keeps freed memory resident.)
#ifndef __SANITIZE_ADDRESS__
  EXPECT_LT(peakRssBytes() - before, 3 * schema::kMaxRecordBytes);
#endif
  ASSERT_EQ(replay.damage().size(), 1u);
  EXPECT_NE(replay.damage()[0].find("larger than the limit of 64 MiB per record"), std::string::npos)
      << replay.damage()[0];
  EXPECT_EQ(replay.stats().events, 2u);
}

// zstd frames that claim (nearly) the limit but hold little cost what they hold, not
// what they claim: 100 of them in a few KiB must not cost 100 x 60 MiB.
TEST(HostileLimits, FramesThatClaimHugeSizesCostWhatTheyHold) {
  TempDir dir;
  {
    CraftedTrace t(dir / "t.htr");
    t.malloc(kStart + kMs, 0x1000, 100);
  }
  std::string bombs;
  for (int i = 0; i < 100; ++i) bombs += lyingZstdFrame(schema::kMaxRecordBytes - 4096, 128 * 1024);
  appendBytes(dir / "t.htr", bombs);
  EXPECT_LT(std::filesystem::file_size(dir / "t.htr"), 8u * 1024);
  const uint64_t before = peakRssBytes();
  schema::TraceReader reader(dir / "t.htr");
  analyzer::Replay replay;
  replay.run(reader);
#ifndef __SANITIZE_ADDRESS__  // its allocator keeps freed memory resident
  EXPECT_LT(peakRssBytes() - before, 24u << 20) << "peak RSS grew by " << (peakRssBytes() - before);
#endif
  EXPECT_EQ(replay.stats().events, 1u);
  // The last is where reading ends (nothing intact after it), the others are skipped.
  EXPECT_EQ(replay.damageCount(), 99u);
  EXPECT_EQ(replay.end(), schema::TraceEnd::Corrupt);
}

// Texts are bounded where the analyzer takes them from the trace: a path of 1 MiB (a
// record well under the limit) becomes 64 KiB and a note.
TEST(HostileLimits, TextsAreBounded) {
  TempDir dir;
  {
    CraftedTrace t(dir / "t.htr");
    t.hugeMappingPath(kStart + kMs, 1 << 20).footer(kStart + 2 * kMs);
  }
  schema::TraceReader reader(dir / "t.htr");
  auto chunk = reader.nextChunk();
  ASSERT_TRUE(chunk);
  const auto mappings = chunk->getMappings();
  ASSERT_EQ(mappings.size(), 1u);
  const auto m = schema::readMapping(mappings[0]);
  EXPECT_LE(m.path.size(), schema::kMaxTextBytes + 64);
  EXPECT_NE(m.path.find("bytes cut]"), std::string::npos);
}

// A FIFO given as the trace is refused at once, never waited on (no writer ever comes).
TEST(HostileLimits, InfoAndAnalyzeNeverWaitOnAFifo) {
  TempDir dir;
  const auto fifo = dir / "t.htr";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const char* command : {"info", "analyze"}) {
    auto result = std::async(std::launch::async, [&] { return runHeaptrail({command, fifo.string()}); });
    if (result.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      // Release the blocked open so the test can end, then fail.
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
      result.wait();
      FAIL() << command << " waited on a FIFO";
    }
    const auto o = result.get();
    EXPECT_EQ(o.code, 1) << command;
    EXPECT_NE(o.err.find("not a regular file"), std::string::npos) << command << ": " << o.err;
  }
}

// Two traces in one file (cat a.htr b.htr): the first is read, and the user is told
// that another one follows and where.
TEST(HostileLimits, ConcatenatedTracesAreNamedNotHidden) {
  TempDir dir;
  for (const char* name : {"a.htr", "b.htr"}) {
    CraftedTrace t(dir / name);
    t.malloc(kStart + kMs, 0x1000, 100).footer(kStart + 2 * kMs);
  }
  const auto first = std::filesystem::file_size(dir / "a.htr");
  appendBytes(dir / "a.htr", readBytes(dir / "b.htr"));
  const auto info = runHeaptrail({"info", (dir / "a.htr").string()});
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("status:           complete, but " + std::to_string(std::filesystem::file_size(dir / "b.htr")) +
                          " more bytes follow the footer at byte " + std::to_string(first) +
                          ": another trace was appended"),
            std::string::npos)
      << info.out;
  const auto text = runHeaptrail({"analyze", (dir / "a.htr").string(), "--no-symbols"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("the trace is complete, but"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("tail -c +" + std::to_string(first + 1)), std::string::npos) << text.out;

  // Other bytes after the footer are named too.
  {
    CraftedTrace t(dir / "c.htr");
    t.footer(kStart + kMs);
  }
  appendBytes(dir / "c.htr", "garbage");
  const auto c = runHeaptrail({"info", (dir / "c.htr").string()});
  EXPECT_NE(c.out.find("complete, but 7 more bytes follow the footer"), std::string::npos) << c.out;
}

}  // namespace
}  // namespace heaptrail::testing
