// Reading ahead on a second thread changes nothing the replay sees: every trace, whole,
// cut off, damaged or stopped early by --at, replays to the same state with and without
// it, and a reader stopped early describes only what it returned.
#include <gtest/gtest.h>

#include <kj/exception.h>

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <tuple>

#include "analyzer/replay.h"
#include "schema/trace_reader.h"
#include "tests/analyzer/synthetic_trace.h"
#include "tests/fuzz/raw_trace.h"

namespace heaptrail::testing {
namespace {

bool severalCpus() {
  cpu_set_t cpus;
  return ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) >= 2;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Everything the report is built from, as text, so that two replays compare in one line.
std::string describe(const analyzer::Replay& replay) {
  std::ostringstream out;
  const auto& s = replay.stats();
  out << "chunks " << s.chunks << " missing " << s.missingChunks << " events " << s.events << " after "
      << s.eventsAfterAt << " allocations " << s.allocations << " frees " << s.frees << " bytes "
      << s.bytesAllocated << " peak " << s.peakBytes << "@" << s.peakTimeNs << " unknown " << s.unknownFrees
      << " double " << s.doubleFrees << " stacks " << s.stacksDefined << " last " << s.lastTimeNs << "\n";
  for (uint64_t n : s.eventsByKind) out << n << ' ';
  for (uint64_t n : s.lostByKind) out << n << ' ';
  out << "\nend " << static_cast<int>(replay.end()) << " problem " << replay.problem() << " at "
      << replay.analysisTimeNs() << " footer " << replay.recordingEnd().has_value() << " damage "
      << replay.damageCount() << "\n";
  for (const auto& d : replay.damage()) out << d << "\n";
  std::vector<std::tuple<uint32_t, uint64_t, uint64_t, uint64_t, uint32_t>> live;
  replay.forEachOutstanding([&](const analyzer::Outstanding& o) {
    live.emplace_back(o.pid, o.address, o.size, o.timeNs, o.stackId);
  });
  std::sort(live.begin(), live.end());
  for (const auto& [pid, address, size, t, stack] : live)
    out << pid << ' ' << address << ' ' << size << ' ' << t << ' ' << stack << "\n";
  return out.str();
}

std::string replayed(const std::string& name, const std::string& bytes, bool readAhead,
                     std::optional<uint64_t> atNs = std::nullopt) {
  schema::TraceReader reader(name, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  analyzer::ReplayOptions options;
  options.atNs = atNs;
  options.readAheadFromBytes = readAhead ? 0 : UINT64_MAX;
  analyzer::Replay replay(options);
  replay.run(reader);
  return describe(replay);
}

// 40 chunks of 3,000 events, frees reaching back into earlier chunks: more batches than
// the read-ahead pool holds, so both sides wait for each other.
std::string manyChunks(const std::filesystem::path& dir, bool footer = true) {
  const auto path = dir / "many.htr";
  SyntheticTrace trace(path);
  uint64_t t = 0;
  for (uint32_t chunk = 0; chunk < 40; ++chunk) {
    for (uint32_t i = 0; i < 1500; ++i) {
      const uint64_t n = uint64_t{chunk} * 1500 + i;
      trace.malloc(t += 7'000, 0x100000 + n * 64, 16 + n % 300, 1 + n % 97);
      const uint64_t back = n == 0 ? 0 : 1 + n * 7919 % std::min<uint64_t>(n, 4000);
      trace.free(t += 3'000, 0x100000 + (n - back) * 64);  // a double free at times: fine
    }
    trace.flush();
  }
  if (footer) trace.finish(t + kMs);
  else trace.abandon();
  return readFile(path);
}

class ReadAhead : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!severalCpus()) GTEST_SKIP() << "this process may use one CPU only: the reader never reads ahead";
  }
  TempDir dir_;
};

TEST_F(ReadAhead, WholeTraceReplaysTheSame) {
  const std::string bytes = manyChunks(dir_.path());
  const std::string sequential = replayed("many", bytes, false);
  EXPECT_NE(sequential.find("chunks 40 "), std::string::npos) << sequential.substr(0, 200);
  EXPECT_EQ(replayed("many", bytes, true), sequential);
}

TEST_F(ReadAhead, FixturesOfEveryVersionReplayTheSame) {
  for (const std::filesystem::path dir : {HEAPTRAIL_V1_FIXTURES, HEAPTRAIL_V2_FIXTURES}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".htr") continue;
      const std::string bytes = readFile(entry.path());
      EXPECT_EQ(replayed(entry.path().string(), bytes, true), replayed(entry.path().string(), bytes, false))
          << entry.path();
    }
  }
}

TEST_F(ReadAhead, CutOffAnywhereReplaysTheSame) {
  const std::string bytes = manyChunks(dir_.path(), /*footer=*/false);
  for (size_t cut = bytes.size() / 23; cut < bytes.size(); cut += bytes.size() / 23 + 1) {
    const std::string prefix = bytes.substr(0, cut);
    EXPECT_EQ(replayed("cut", prefix, true), replayed("cut", prefix, false)) << "cut at " << cut;
  }
}

TEST_F(ReadAhead, DamagedChunksReplayTheSame) {
  const std::string bytes = manyChunks(dir_.path());
  // Damage in the middle of the file: whole records lost (resynchronized after) and
  // records that decompress but whose events do not decode.
  for (size_t at = bytes.size() / 7; at < bytes.size(); at += bytes.size() / 5) {
    std::string damaged = bytes;
    for (size_t i = at; i < std::min(at + 40, damaged.size()); ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    const std::string sequential = replayed("damaged", damaged, false);
    EXPECT_EQ(sequential.find(" damage 0\n"), std::string::npos) << "no damage seen at " << at;
    EXPECT_EQ(replayed("damaged", damaged, true), sequential) << "damage at " << at;
  }
}

TEST_F(ReadAhead, StoppingEarlyAtAPointInTimeReplaysTheSame) {
  const std::string bytes = manyChunks(dir_.path());
  for (uint64_t atMs : {0, 1, 50, 200, 500, 100000}) {
    const std::string sequential = replayed("at", bytes, false, atMs * kMs);
    EXPECT_EQ(replayed("at", bytes, true, atMs * kMs), sequential) << "--at " << atMs << " ms";
  }
}

TEST_F(ReadAhead, AReaderStoppedEarlyDescribesOnlyTheChunksItReturned) {
  const std::string bytes = manyChunks(dir_.path());
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  for (uint64_t taken : {0, 1, 2, 39}) {
    schema::TraceReader sequential("many", data, bytes.size()), ahead("many", data, bytes.size());
    sequential.streamEvents(false);
    ahead.streamEvents(true);
    for (uint64_t i = 0; i < taken; ++i) {
      ASSERT_TRUE(sequential.nextChunk());
      ASSERT_TRUE(ahead.nextChunk());
      EXPECT_EQ(ahead.bytesRead(), sequential.bytesRead());
    }
    ahead.awaitReadAhead();  // it has read beyond what was taken
    ahead.finishReading();
    sequential.finishReading();
    EXPECT_EQ(ahead.chunksRead(), taken);
    EXPECT_EQ(ahead.bytesRead(), sequential.bytesRead());
    EXPECT_EQ(ahead.end(), schema::TraceEnd::Reading);
    EXPECT_FALSE(ahead.footer().has_value());
    EXPECT_FALSE(ahead.nextChunk().has_value()) << "no chunk after finishReading()";
  }
}

// Found by the fuzzer: a record that Cap'n Proto refuses while the reading thread reads it
// throws on the caller's thread, as it does without that thread (a kj::Exception must not
// end on another thread than the one that threw it: kj aborts).
TEST_F(ReadAhead, AnExceptionOfTheReadingThreadIsThrownToTheCaller) {
  const std::string raw = readFile(std::filesystem::path(HEAPTRAIL_FUZZ_CORPUS) / "read-ahead-thrown-in-reading-thread.raw");
  std::string bytes;
  ASSERT_TRUE(fuzz::rawToTrace(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), bytes));
  std::string thrown[2];
  for (const bool readAhead : {false, true}) {
    try {
      replayed("crafted", bytes, readAhead);
    } catch (const kj::Exception& e) {
      thrown[readAhead] = e.getDescription().cStr();
    }
  }
  EXPECT_FALSE(thrown[0].empty()) << "the crafted trace no longer makes the reader throw";
  EXPECT_EQ(thrown[1], thrown[0]);
}

TEST_F(ReadAhead, TheEndOfTheTraceIsSeenWithItsFooter) {
  const std::string bytes = manyChunks(dir_.path());
  schema::TraceReader reader("many", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  reader.streamEvents(true);
  uint64_t chunks = 0, events = 0;
  while (reader.nextChunk()) {
    ++chunks;
    const schema::DecodedEvents* batch = nullptr;
    while (const size_t n = reader.nextEvents(batch)) events += n;
  }
  reader.finishReading();
  EXPECT_EQ(chunks, 40u);
  EXPECT_EQ(events, 40u * 3000);
  EXPECT_EQ(reader.end(), schema::TraceEnd::Complete);
  EXPECT_TRUE(reader.footer().has_value());
  EXPECT_EQ(reader.bytesRead(), bytes.size());
}

}  // namespace
}  // namespace heaptrail::testing
