// The trace file: every field survives a write/read round trip, a file cut anywhere
// reads back its complete prefix and says so, and files that are not traces are refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <algorithm>

#include <capnp/schema.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <zstd.h>

#include "schema/event_codec.h"
#include "schema/event_kinds.h"
#include "schema/trace_error.h"
#include "schema/trace_format.h"
#include "schema/trace_reader.h"
#include "schema/trace_writer.h"
#include "tests/support/synthetic_header.h"
#include "tests/support/temp_dir.h"
#include "tests/support/trace_contents.h"

namespace heaptrail {
namespace {

using schema::EventKind;
using schema::TraceEnd;

using testing::TempDir;

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void writeFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

void fillHeader(schema::Header::Builder h) {
  testing::fillSyntheticHeader(h, {1000, 4242, {"./app", "--flag"}, "test", "6.18.0-test"});
  auto o = h.initOptions();
  o.setAllocatorObject("/lib/libc.so.6");
  o.setMinSize(16);
  o.setMaxSize(1 << 20);
  o.setStackDepth(32);
  o.setRingBufferBytes(1 << 22);
  o.setDurationNs(5'000'000'000);
  auto f = o.initProbedFunctions(2);
  f.set(0, "malloc");
  f.set(1, "free");
  o.setFollowForks(true);
  o.initCustomFunctions(1).set(0, "pool_free=free");
}

// Three chunks with every kind of content, then a footer.
void writeSampleTrace(const std::filesystem::path& path, bool footer = true) {
  schema::TraceWriter writer(path);
  writer.writeHeader(fillHeader);
  schema::ChunkBuilder chunk;
  chunk.addMapping({900, 4242, 0x400000, 0x401000, 0x1000, "/app", std::string("\x01\x02\xff", 3),
                    schema::MappingSource::PROC_MAPS, true, 77});
  chunk.addProcessEvent({950, 4242, schema::ProcessEventKind::EXEC, 0, "app", false, 0, 0, false, {"./app", "-x"}});
  chunk.addFunction({1, "_Znwm", EventKind::OPERATOR_NEW, "/usr/lib/libstdc++.so.6", false});
  chunk.addFunction({2, "pool_free", EventKind::FREE, "/app", true});
  const uint64_t frames[] = {0x401234, 0x401456};
  chunk.addStack(1, frames);
  chunk.addEvent({EventKind::OPERATOR_NEW, 2000, 4242, 4243, 0x10000, 100, 1, 1});
  chunk.addEvent({EventKind::FREE, 1990, 4242, 4244, 0x20000, 0, 0, 2});  // earlier: negative delta
  chunk.addLost(EventKind::FREE, 3);
  writer.writeChunk(chunk);
  EXPECT_TRUE(chunk.empty());
  for (int c = 0; c < 2; ++c) {
    chunk.addEvent({EventKind::REALLOC, 3000u + c, 4242, 4242, 0x30000u + c, 200, 1, 0});
    writer.writeChunk(chunk);
  }
  if (footer) {
    chunk.addProcessEvent({5000, 4242, schema::ProcessEventKind::EXIT, 0, "", true, 3, 0, false, {}});
    writer.writeChunk(chunk);
    writer.writeFooter([](schema::Footer::Builder f) {
      f.setEndTimeNs(6000);
      f.setEndReason(schema::EndReason::TARGET_EXITED);
      f.setEventsTotal(4);
      f.setStacksTotal(1);
      auto lost = f.initLost(1);
      lost[0].setKind(EventKind::FREE);
      lost[0].setCount(3);
    });
  }
}

// Every EventKind of the schema has its entry in the one table of kind meanings (the
// BPF kinds are tied to the schema's by static asserts in schema/event_kinds.h).
TEST(TraceFormat, EveryEventKindOfTheSchemaIsDescribed) {
  const auto enumerants = capnp::Schema::from<EventKind>().getEnumerants();
  ASSERT_EQ(enumerants.size(), schema::kEventKindCount);
  for (const auto e : enumerants) {
    const auto* info = schema::eventKindInfo(static_cast<EventKind>(e.getOrdinal()));
    ASSERT_NE(info, nullptr) << e.getProto().getName().cStr();
    EXPECT_EQ(static_cast<unsigned>(info->kind), e.getOrdinal());
  }
  EXPECT_EQ(schema::eventKindInfo(static_cast<EventKind>(schema::kEventKindCount)), nullptr);
}

TEST(TraceFormat, RoundTripsEveryField) {
  TempDir dir;
  writeSampleTrace(dir / "t.htr");
  const auto t = testing::loadTrace(dir / "t.htr");

  EXPECT_EQ(t.schemaVersion, schema::CURRENT_SCHEMA_VERSION);
  EXPECT_EQ(t.kernelRelease, "6.18.0-test");
  EXPECT_EQ(t.machine, "x86_64");
  EXPECT_EQ(t.pageSize, 4096u);
  EXPECT_EQ(t.startTimeNs, 1000u);
  EXPECT_EQ(t.anchorClockNs, 1000u);
  EXPECT_EQ(t.anchorRealtimeNs, 1'700'000'000'000'000'000ull);
  EXPECT_EQ(t.targetPids, std::vector<uint32_t>{4242});
  EXPECT_EQ(t.targetCommands.at(0), (std::vector<std::string>{"./app", "--flag"}));
  EXPECT_EQ(t.allocatorObject, "/lib/libc.so.6");
  EXPECT_EQ(t.probedFunctions, (std::vector<std::string>{"malloc", "free"}));

  schema::TraceReader reader(dir / "t.htr");
  const auto o = reader.header().getOptions();
  EXPECT_EQ(o.getMinSize(), 16u);
  EXPECT_EQ(o.getMaxSize(), 1u << 20);
  EXPECT_EQ(o.getStackDepth(), 32u);
  EXPECT_EQ(o.getRingBufferBytes(), 1u << 22);
  EXPECT_EQ(o.getDurationNs(), 5'000'000'000u);
  EXPECT_EQ(reader.header().getHostname(), "box");
  EXPECT_TRUE(reader.header().getTargets()[0].getStartedByRecorder());

  ASSERT_EQ(t.events.size(), 4u);
  EXPECT_EQ(t.events[0].kind, EventKind::OPERATOR_NEW);
  EXPECT_EQ(t.events[0].function, 1u);
  EXPECT_EQ(t.events[1].function, 2u);
  EXPECT_EQ(t.functionName(t.events[0]), "_Znwm");
  ASSERT_EQ(t.functions.size(), 2u);
  EXPECT_EQ(t.functions.at(2).symbol, "pool_free");
  EXPECT_EQ(t.functions.at(2).kind, EventKind::FREE);
  EXPECT_EQ(t.functions.at(2).object, "/app");
  EXPECT_TRUE(t.functions.at(2).custom);
  EXPECT_FALSE(t.functions.at(1).custom);
  EXPECT_TRUE(t.followForks);
  EXPECT_EQ(reader.header().getOptions().getCustomFunctions()[0], "pool_free=free");
  EXPECT_EQ(t.events[0].timeNs, 2000u);
  EXPECT_EQ(t.events[0].pid, 4242u);
  EXPECT_EQ(t.events[0].tid, 4243u);
  EXPECT_EQ(t.events[0].address, 0x10000u);
  EXPECT_EQ(t.events[0].size, 100u);
  EXPECT_EQ(t.events[0].stackId, 1u);
  EXPECT_EQ(t.events[1].kind, EventKind::FREE);
  EXPECT_EQ(t.events[1].timeNs, 1990u);
  EXPECT_EQ(t.events[1].tid, 4244u);
  EXPECT_EQ(t.events[1].stackId, 0u);
  EXPECT_EQ(t.events[2].kind, EventKind::REALLOC);
  EXPECT_EQ(t.events[3].timeNs, 3001u);
  EXPECT_EQ(t.events[3].address, 0x30001u);

  ASSERT_EQ(t.stacks.size(), 1u);
  EXPECT_EQ(t.stacks.at(1), (std::vector<uint64_t>{0x401234, 0x401456}));
  ASSERT_EQ(t.mappings.size(), 1u);
  const auto& m = t.mappings[0];
  EXPECT_EQ(m.timeNs, 900u);
  EXPECT_EQ(m.start, 0x400000u);
  EXPECT_EQ(m.end, 0x401000u);
  EXPECT_EQ(m.fileOffset, 0x1000u);
  EXPECT_EQ(m.path, "/app");
  EXPECT_EQ(m.buildId, std::string("\x01\x02\xff", 3));
  EXPECT_EQ(m.source, schema::MappingSource::PROC_MAPS);
  EXPECT_EQ(m.inode, 77u);
  ASSERT_EQ(t.processes.size(), 2u);
  EXPECT_EQ(t.processes[0].kind, schema::ProcessEventKind::EXEC);
  EXPECT_EQ(t.processes[0].command, "app");
  EXPECT_EQ(t.processes[0].commandLine, (std::vector<std::string>{"./app", "-x"}));
  EXPECT_EQ(t.processes[1].kind, schema::ProcessEventKind::EXIT);
  EXPECT_TRUE(t.processes[1].exitStatusKnown);
  EXPECT_EQ(t.processes[1].exitCode, 3);
  EXPECT_EQ(t.lostInChunks.at(EventKind::FREE), 3u);
  EXPECT_EQ(t.chunkSequences, (std::vector<uint64_t>{0, 1, 2, 3}));

  EXPECT_EQ(t.end, TraceEnd::Complete);
  EXPECT_TRUE(t.hasFooter);
  EXPECT_EQ(t.endReason, schema::EndReason::TARGET_EXITED);
  EXPECT_EQ(t.footerEvents, 4u);
  EXPECT_EQ(t.footerChunks, 4u);
  EXPECT_EQ(t.footerLost.at(EventKind::FREE), 3u);
}

TEST(TraceFormat, FileIsAPlainZstdStream) {
  TempDir dir;
  writeSampleTrace(dir / "t.htr");
  const std::string bytes = readFile(dir / "t.htr");
  // Every frame, the identifying skippable one included, is standard zstd.
  size_t offset = 0, frames = 0;
  while (offset < bytes.size()) {
    const size_t n = ZSTD_findFrameCompressedSize(bytes.data() + offset, bytes.size() - offset);
    ASSERT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
    offset += n;
    ++frames;
  }
  EXPECT_EQ(frames, 1u + 1u + 4u + 1u);  // magic, header, chunks, footer
  uint32_t first = 0;
  std::memcpy(&first, bytes.data(), 4);
  EXPECT_EQ(first & 0xFFFFFFF0u, 0x184D2A50u);  // a skippable frame
}

// Byte offsets at which each record (header, chunks, footer) ends.
std::vector<size_t> recordEnds(const std::string& bytes) {
  std::vector<size_t> ends;
  size_t offset = schema::kPreambleSize;
  while (offset < bytes.size()) {
    offset += ZSTD_findFrameCompressedSize(bytes.data() + offset, bytes.size() - offset);
    ends.push_back(offset);
  }
  return ends;
}

TEST(TraceFormat, TruncatedAtEveryChunkBoundaryReadsCompletePrefix) {
  TempDir dir;
  writeSampleTrace(dir / "t.htr");
  const std::string bytes = readFile(dir / "t.htr");
  const auto ends = recordEnds(bytes);
  ASSERT_EQ(ends.size(), 6u);  // header, 4 chunks, footer
  const size_t eventsAfterChunk[] = {0, 2, 3, 4, 4};
  for (size_t chunks = 0; chunks <= 4; ++chunks) {
    writeFile(dir / "cut.htr", bytes.substr(0, ends[chunks]));
    const auto t = testing::loadTrace(dir / "cut.htr");
    EXPECT_EQ(t.chunkSequences.size(), chunks);
    EXPECT_EQ(t.events.size(), eventsAfterChunk[chunks]);
    EXPECT_EQ(t.end, TraceEnd::Truncated) << "cut after chunk " << chunks;
    EXPECT_FALSE(t.hasFooter);
    EXPECT_NE(t.problem.find("cut off"), std::string::npos) << t.problem;
  }
}

TEST(TraceFormat, TruncatedInsideAChunkReadsChunksBeforeIt) {
  TempDir dir;
  writeSampleTrace(dir / "t.htr");
  const std::string bytes = readFile(dir / "t.htr");
  const auto ends = recordEnds(bytes);
  // Cut at every byte inside chunk 2 (the third chunk) and inside the footer.
  for (size_t cut = ends[2] + 1; cut < ends[3]; ++cut) {
    writeFile(dir / "cut.htr", bytes.substr(0, cut));
    const auto t = testing::loadTrace(dir / "cut.htr");
    ASSERT_EQ(t.chunkSequences.size(), 2u) << "cut at byte " << cut;
    EXPECT_EQ(t.events.size(), 3u);
    EXPECT_EQ(t.end, TraceEnd::Truncated);
    EXPECT_NE(t.problem.find("inside a record"), std::string::npos) << t.problem;
  }
  for (size_t cut = ends[4] + 1; cut < ends[5]; ++cut) {
    writeFile(dir / "cut.htr", bytes.substr(0, cut));
    const auto t = testing::loadTrace(dir / "cut.htr");
    EXPECT_EQ(t.chunkSequences.size(), 4u);
    EXPECT_EQ(t.end, TraceEnd::Truncated);
  }
}

TEST(TraceFormat, TruncatedHeaderIsAnError) {
  TempDir dir;
  writeSampleTrace(dir / "t.htr");
  const std::string bytes = readFile(dir / "t.htr");
  const auto ends = recordEnds(bytes);
  for (size_t cut : {size_t{0}, size_t{5}, schema::kPreambleSize, schema::kPreambleSize + 3, ends[0] - 1}) {
    writeFile(dir / "cut.htr", bytes.substr(0, cut));
    EXPECT_THROW(schema::TraceReader{dir / "cut.htr"}, schema::TraceError) << "cut at " << cut;
  }
}

TEST(TraceFormat, RefusesFilesThatAreNotTraces) {
  TempDir dir;
  writeFile(dir / "text", "hello, this is not a trace at all\n");
  try {
    schema::TraceReader reader(dir / "text");
    FAIL() << "accepted a text file";
  } catch (const schema::TraceError& e) {
    EXPECT_NE(std::string(e.what()).find("not a heaptrail trace"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("text"), std::string::npos) << "names the file: " << e.what();
  }
  EXPECT_THROW(schema::TraceReader{dir / "missing"}, schema::TraceError);
  writeFile(dir / "empty", "");
  EXPECT_THROW(schema::TraceReader{dir / "empty"}, schema::TraceError);
}

TEST(TraceFormat, RefusesNewerSchemaVersion) {
  TempDir dir;
  // Write a header claiming a future version, bypassing the writer which never would.
  capnp::MallocMessageBuilder message;
  auto header = message.initRoot<schema::Record>().initHeader();
  header.setSchemaVersion(schema::CURRENT_SCHEMA_VERSION + 1);
  const auto flat = capnp::messageToFlatArray(message);
  std::string compressed(ZSTD_compressBound(flat.asBytes().size()), '\0');
  compressed.resize(ZSTD_compress(compressed.data(), compressed.size(), flat.asBytes().begin(),
                                  flat.asBytes().size(), 3));
  std::string bytes(schema::kPreambleSize, '\0');
  const uint32_t magic = schema::kSkippableFrameMagic, length = schema::kFileMagic.size();
  std::memcpy(bytes.data(), &magic, 4);
  std::memcpy(bytes.data() + 4, &length, 4);
  std::memcpy(bytes.data() + 8, schema::kFileMagic.data(), length);
  writeFile(dir / "future.htr", bytes + compressed);
  try {
    schema::TraceReader reader(dir / "future.htr");
    FAIL() << "accepted a newer schema";
  } catch (const schema::TraceError& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
}

TEST(TraceFormat, CorruptChunkInTheMiddleDoesNotHideTheChunksAfterIt) {
  TempDir dir;
  writeSampleTrace(dir / "t.htr");
  std::string bytes = readFile(dir / "t.htr");
  const auto ends = recordEnds(bytes);
  bytes[ends[1] + (ends[2] - ends[1]) / 2] ^= 0x5a;  // damage chunk 1's compressed data
  writeFile(dir / "bad.htr", bytes);
  schema::TraceReader reader(dir / "bad.htr");
  std::vector<uint64_t> sequences;
  while (auto chunk = reader.nextChunk()) sequences.push_back(chunk->getSequence());
  EXPECT_EQ(sequences, (std::vector<uint64_t>{0, 2, 3})) << "chunk 1 skipped, the rest read";
  EXPECT_EQ(reader.end(), TraceEnd::Complete) << "the footer after the damage is intact";
  ASSERT_EQ(reader.damage().size(), 1u);
  EXPECT_NE(reader.damage()[0].find("corrupt record at byte"), std::string::npos) << reader.damage()[0];
  EXPECT_GT(reader.skippedBytes(), 0u);

  // Garbage spliced between two chunks is skipped the same way.
  std::string spliced = readFile(dir / "t.htr");
  spliced.insert(ends[2], std::string(300, '\x42'));
  writeFile(dir / "spliced.htr", spliced);
  const auto t = testing::loadTrace(dir / "spliced.htr");
  EXPECT_EQ(t.chunkSequences, (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(t.end, TraceEnd::Complete);
}

TEST(TraceFormat, DamageAtTheEndIsReportedAsCorrupt) {
  TempDir dir;
  writeSampleTrace(dir / "t.htr");
  std::string bytes = readFile(dir / "t.htr");
  const auto ends = recordEnds(bytes);
  bytes[ends[4] + (ends[5] - ends[4]) / 2] ^= 0x5a;  // damage the footer
  writeFile(dir / "bad.htr", bytes);
  const auto t = testing::loadTrace(dir / "bad.htr");
  EXPECT_EQ(t.chunkSequences.size(), 4u);
  EXPECT_EQ(t.end, TraceEnd::Corrupt);
  EXPECT_NE(t.problem.find("corrupt"), std::string::npos) << t.problem;
  EXPECT_FALSE(t.hasFooter);
}

TEST(TraceFormat, SecondWriterOnSameFileIsRefused) {
  TempDir dir;
  schema::TraceWriter first(dir / "t.htr");
  first.writeHeader(fillHeader);
  try {
    schema::TraceWriter second(dir / "t.htr");
    FAIL() << "two writers on one file";
  } catch (const schema::TraceError& e) {
    EXPECT_NE(std::string(e.what()).find("another heaptrail recorder"), std::string::npos) << e.what();
  }
  // The first writer's file is untouched.
  schema::ChunkBuilder chunk;
  first.writeChunk(chunk);
  EXPECT_NO_THROW(schema::TraceReader{dir / "t.htr"});
}

TEST(TraceFormat, UnwritableOutputIsAClearError) {
  try {
    schema::TraceWriter writer("/nonexistent-dir/t.htr");
    FAIL();
  } catch (const schema::TraceError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/t.htr"), std::string::npos) << e.what();
  }
}

// Version 2's encoding gives back every event exactly (at 1 ns): every kind, failed
// calls, addresses reused, released out of order, beyond the allocation window, never
// allocated, by several processes and threads, times going backwards, more distinct
// infos than the table holds, over many chunks.
// Random events of every kind, several processes and up to `threads` threads per
// process, frees of recent and old blocks (by their own thread or another), blocks
// handed out again right after their free, failed allocations, unknown frees.
std::vector<schema::EventRecord> writeRandomEvents(const std::filesystem::path& path, schema::EncodingOptions options,
                                                   uint32_t threads, int chunks = 12) {
  std::vector<schema::EventRecord> written;
  schema::TraceWriter writer(path);
  options.allocationWindow = 64;  // small tables: their edges are reached
  options.maxInfos = 16;
  writer.setEncoding(options);
  writer.writeHeader(fillHeader);
  schema::ChunkBuilder chunk;
  chunk.setEncoding(writer.encoding());
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  struct Block {
    uint64_t address, size;
    uint32_t pid, tid;
  };
  std::vector<Block> live;
  std::vector<std::pair<uint64_t, uint64_t>> freed;  // the latest frees: address, size
  uint64_t top = 0x55550000, t = 5000;
  for (int c = 0; c < chunks; ++c) {
    // Some chunks free in random order (no ranks pay), others mostly the newest blocks,
    // mostly by the thread that allocated them.
    const bool randomOrder = c % 3 == 2;
    for (int i = 0; i < 700; ++i) {
      const uint64_t r = next();
      t += (r >> 40) % 3000;
      if ((r & 15) == 0) t -= 500;  // another thread's slightly earlier stamp
      const uint32_t pid = 4242 + static_cast<uint32_t>((r >> 20) % 2);
      const uint32_t tid = pid + static_cast<uint32_t>((r >> 22) % threads);
      const auto kind = static_cast<EventKind>((r >> 8) % schema::kEventKindCount);
      const auto* info = schema::eventKindInfo(kind);
      const bool allocates = info->role == schema::EventRole::Allocate ||
                             info->role == schema::EventRole::Reallocate || info->role == schema::EventRole::Map;
      schema::EventRecord e{kind, t, pid, tid, 0, 0, static_cast<uint32_t>((r >> 30) % 5),
                            static_cast<uint16_t>((r >> 34) % 4)};
      if (allocates) {
        e.size = (r >> 12) % 7 == 0 ? (r >> 16) % 100000 : 16 * ((r >> 16) % 8);
        if ((r >> 50) % 17 == 0) {
          e.address = 0;  // failed
        } else if (!live.empty() && (r >> 45) % 3 == 0) {
          e.address = live[(r >> 52) % live.size()].address;  // reused without a free seen
        } else if (!freed.empty() && (r >> 45) % 3 == 1) {
          // A block just given back, of the same size when there is one (a free list).
          size_t k = freed.size() - 1 - (r >> 52) % std::min<size_t>(freed.size(), 3);
          for (size_t j = freed.size(); j-- > 0;)
            if (schema::predictedNextBlockOffset(freed[j].second) == schema::predictedNextBlockOffset(e.size)) {
              k = j;
              break;
            }
          e.address = freed[k].first;
          freed.erase(freed.begin() + static_cast<long>(k));
        } else {
          e.address = top;
          top += schema::predictedNextBlockOffset(e.size) + ((r >> 55) % 4 == 0 ? 4096 : 0);
        }
        if (e.address) live.push_back({e.address, e.size, pid, tid});
      } else {
        if (!live.empty() && (r >> 45) % 8 != 0) {
          const size_t k = randomOrder || (r >> 48) % 4 == 0
                               ? (r >> 52) % live.size()
                               : live.size() - 1 - (r >> 52) % std::min<size_t>(live.size(), 4);
          e.address = live[k].address;
          if (!randomOrder && (r >> 36) % 8 != 0) {
            e.pid = live[k].pid;
            e.tid = live[k].tid;
          }
          freed.emplace_back(live[k].address, live[k].size);
          if (freed.size() > 16) freed.erase(freed.begin());
          live.erase(live.begin() + static_cast<long>(k));
        } else {
          e.address = (r >> 45) % 5 == 0 ? 0 : 0x7000000 + (r >> 44);  // free(NULL), unknown
        }
        e.size = info->role == schema::EventRole::ReallocRelease || info->role == schema::EventRole::Unmap
                     ? (r >> 16) % 5000 : 0;
      }
      chunk.addEvent(e);
      written.push_back(e);
    }
    writer.writeChunk(chunk);
  }
  return written;
}

void expectSameEvents(const std::vector<schema::EventRecord>& written, const std::filesystem::path& path) {
  const auto t = testing::loadTrace(path);
  EXPECT_EQ(t.schemaVersion, schema::CURRENT_SCHEMA_VERSION);
  ASSERT_EQ(t.events.size(), written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    const auto& a = written[i];
    const auto& b = t.events[i];
    ASSERT_TRUE(a.kind == b.kind && a.timeNs == b.timeNs && a.pid == b.pid && a.tid == b.tid &&
                a.address == b.address && a.size == b.size && a.stackId == b.stackId && a.function == b.function)
        << "event " << i << ": kind " << static_cast<int>(b.kind) << " time " << b.timeNs << " address " << std::hex
        << b.address << " (written " << a.address << ") size " << std::dec << b.size << " (written " << a.size << ")";
  }
}

// PackedEvents.releaseRanks of every chunk.
std::vector<uint32_t> releaseRanksPerChunk(const std::filesystem::path& path) {
  schema::TraceReader reader(path);
  std::vector<uint32_t> ranks;
  while (auto chunk = reader.nextChunk()) ranks.push_back(chunk->getPacked().getReleaseRanks());
  return ranks;
}

TEST(TraceFormat, PackedEventsRoundTripEveryEventExactly) {
  TempDir dir;
  expectSameEvents(writeRandomEvents(dir / "t.htr", {}, 3), dir / "t.htr");
  // Some chunks name releases by rank, others (random order) by number.
  const auto ranks = releaseRanksPerChunk(dir / "t.htr");
  EXPECT_NE(std::count(ranks.begin(), ranks.end(), 0u), 0) << "no chunk without ranks";
  EXPECT_NE(std::count(ranks.begin(), ranks.end(), 127u), 0) << "no chunk with ranks";
}

// More threads than thread states (the last state is shared), ranks that drop out of
// a thread's recent blocks quickly (R = 2), and version 2's coding.
TEST(TraceFormat, PackedEventsRoundTripInEveryCoding) {
  TempDir dir;
  schema::EncodingOptions o;
  expectSameEvents(writeRandomEvents(dir / "many.htr", o, 90), dir / "many.htr");
  o.releaseRanks = 2;
  expectSameEvents(writeRandomEvents(dir / "r2.htr", o, 3), dir / "r2.htr");
  o.releaseRanks = 0;
  expectSameEvents(writeRandomEvents(dir / "r0.htr", o, 3), dir / "r0.htr");
  EXPECT_EQ(releaseRanksPerChunk(dir / "r0.htr"), std::vector<uint32_t>(12, 0u));
  o = {};
  o.coding = 0;
  expectSameEvents(writeRandomEvents(dir / "v2.htr", o, 3), dir / "v2.htr");
  schema::TraceReader reader(dir / "v2.htr");
  auto chunk = reader.nextChunk();
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->getPacked().getCoding(), 0u);
  EXPECT_NE(chunk->getPacked().getInfos().size(), 0u);
}

// A chunk coded by a later heaptrail is damage to this one, not events misread.
TEST(TraceFormat, PackedEventsOfAnUnknownCodingAreRefused) {
  TempDir dir;
  writeRandomEvents(dir / "t.htr", {}, 1, 1);
  schema::TraceReader reader(dir / "t.htr");
  auto chunk = reader.nextChunk();
  ASSERT_TRUE(chunk);
  capnp::MallocMessageBuilder message;
  message.setRoot(chunk->getPacked());
  auto packed = message.getRoot<schema::PackedEvents>();
  packed.setCoding(schema::kCurrentCoding + 1);
  schema::EventDecoder decoder;
  schema::DecodedEvents events;
  EXPECT_THROW(decoder.decode(packed.asReader(), 0, 1, events), kj::Exception);
}

// Times are stored in steps of the chosen resolution, rounded down counting from the
// trace's start (no event moves before it); the order of events stays exact.
// The encoder and the decoder share RecentList, so a round trip cannot see its mistakes:
// it is checked against a plain model (a deque of the newest values) here, through
// enough additions and removals to wrap and slide its buffer many times.
TEST(RecentList, KeepsTheNewestValuesAndRemovesByRank) {
  for (const size_t capacity : {size_t{1}, size_t{2}, size_t{7}, size_t{127}}) {
    schema::RecentList<uint64_t> list;
    std::deque<uint64_t> model;  // oldest first
    uint64_t state = 12345;
    auto random = [&] {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return state >> 33;
    };
    for (uint64_t value = 1; value <= 20000; ++value) {
      if (!model.empty() && random() % 3 == 0) {
        const size_t rank = random() % model.size();
        ASSERT_EQ(list.at(rank), model[model.size() - 1 - rank]);
        list.remove(rank);
        model.erase(model.begin() + static_cast<std::ptrdiff_t>(model.size() - 1 - rank));
      } else {
        list.add(value, capacity);
        model.push_back(value);
        if (model.size() > capacity) model.pop_front();
      }
      ASSERT_EQ(list.size(), model.size()) << "capacity " << capacity << " after value " << value;
      for (size_t rank = 0; rank < model.size(); ++rank)
        ASSERT_EQ(list.at(rank), model[model.size() - 1 - rank]) << "capacity " << capacity << " rank " << rank;
    }
    EXPECT_LE(list.room(), 2 * capacity) << "capacity " << capacity;
    list.clear();
    EXPECT_EQ(list.size(), 0u);
    list.add(7, capacity);
    EXPECT_EQ(list.at(0), 7u);
  }
}

// The encoder keeps one list per size class seen in a chunk (thousands on a device), most
// holding a few values: their memory follows what they hold, not their capacity.
TEST(RecentList, AListOfAFewValuesStaysSmall) {
  schema::RecentList<uint64_t> list;
  for (uint64_t value = 1; value <= 3; ++value) list.add(value, 127);
  EXPECT_LE(list.room(), 8u);
  for (uint64_t value = 4; value <= 1000; ++value) list.add(value, 127);
  EXPECT_EQ(list.size(), 127u);
  EXPECT_LE(list.room(), 254u);
}

TEST(TraceFormat, TimeResolutionRoundsDownFromTheStart) {
  TempDir dir;
  {
    schema::TraceWriter writer(dir / "t.htr");
    schema::EncodingOptions o;
    o.timeResolutionNs = 1'000'000;
    writer.setEncoding(o);
    writer.writeHeader([](schema::Header::Builder h) { testing::fillSyntheticHeader(h, {1'000'000'123, 4242}); });
    schema::ChunkBuilder chunk;
    chunk.setEncoding(writer.encoding());
    for (uint64_t t : {1'000'000'123ull, 1'000'999'999ull, 1'001'000'123ull, 1'000'500'000ull, 1'250'000'124ull})
      chunk.addEvent({EventKind::MALLOC, t, 4242, 4242, 0x1000 + t % 7 * 64, 16, 0, 0});
    writer.writeChunk(chunk);
  }
  schema::TraceReader reader(dir / "t.htr");
  EXPECT_EQ(reader.timeResolutionNs(), 1'000'000u);
  const auto t = testing::loadTrace(dir / "t.htr");
  ASSERT_EQ(t.events.size(), 5u);
  const std::vector<uint64_t> expected = {1'000'000'123, 1'000'000'123, 1'001'000'123, 1'000'000'123, 1'250'000'123};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(t.events[i].timeNs, expected[i]) << i;
  EXPECT_EQ(t.events[4].address, 0x1000u + 1'250'000'124ull % 7 * 64) << "the order (and all else) is exact";
}

// A chunk reads on its own: when one is damaged, the next still decodes; only its frees
// of blocks allocated in the damaged chunk lose their address (as a free whose
// allocation was never recorded).
TEST(TraceFormat, Version2ChunkAfterADamagedOneStillDecodes) {
  TempDir dir;
  {
    schema::TraceWriter writer(dir / "t.htr");
    writer.writeHeader(fillHeader);
    schema::ChunkBuilder chunk;
    chunk.addEvent({EventKind::MALLOC, 2000, 4242, 4242, 0x10000, 100, 0, 1});
    writer.writeChunk(chunk);
    for (int i = 0; i < 200; ++i) chunk.addEvent({EventKind::MALLOC, 3000u + i, 4242, 4242, 0x20000u + 0x70u * i, 99, 0, 1});
    writer.writeChunk(chunk);  // chunk 1: damaged below
    chunk.addEvent({EventKind::FREE, 4000, 4242, 4242, 0x20000, 0, 0, 2});  // allocated in chunk 1
    chunk.addEvent({EventKind::FREE, 4001, 4242, 4242, 0x10000, 0, 0, 2});  // allocated in chunk 0
    chunk.addEvent({EventKind::CALLOC, 4002, 4242, 4243, 0x30000, 50, 0, 3});
    writer.writeChunk(chunk);
  }
  std::string bytes = readFile(dir / "t.htr");
  const auto ends = recordEnds(bytes);
  bytes[ends[1] + (ends[2] - ends[1]) / 2] ^= 0x5a;
  writeFile(dir / "bad.htr", bytes);
  const auto t = testing::loadTrace(dir / "bad.htr");
  EXPECT_EQ(t.chunkSequences, (std::vector<uint64_t>{0, 2}));
  ASSERT_EQ(t.events.size(), 4u);
  EXPECT_EQ(t.events[1].address, schema::kUnresolvedAddress);
  EXPECT_EQ(t.events[2].address, 0x10000u);
  EXPECT_EQ(t.events[3].kind, EventKind::CALLOC);
  EXPECT_EQ(t.events[3].address, 0x30000u);
  EXPECT_EQ(t.events[3].tid, 4243u);
  EXPECT_EQ(t.events[3].size, 50u);
  EXPECT_EQ(t.events[3].function, 3u);
}

}  // namespace
}  // namespace heaptrail
