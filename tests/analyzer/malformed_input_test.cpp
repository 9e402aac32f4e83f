// A trace attached to a bug report may be damaged or hostile: every malformed input
// gets a one-line error naming the file (or a warning when the rest is usable) and the
// analyzer never crashes.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <zstd.h>

#include "analyzer/cli.h"
#include "schema/chunk_builder.h"
#include "schema/trace_format.h"
#include "schema/trace_writer.h"
#include "tests/analyzer/synthetic_trace.h"

namespace heaptrail::testing {
namespace {

struct CliRun {
  int code;
  std::string out, err;
};

CliRun run(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = analyzer::heaptrailMain(args, out, err);
  return {code, out.str(), err.str()};
}

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void writeFile(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

void header(schema::Header::Builder h) { fillSyntheticHeader(h, {kStart, kPid}); }

// One-line error naming the file, exit status 1.
void expectOneLineError(const std::filesystem::path& file, const std::string& what) {
  for (const char* command : {"analyze", "info"}) {
    const CliRun r = run({command, file.string()});
    EXPECT_EQ(r.code, 1) << command << ": " << r.err;
    EXPECT_NE(r.err.find(file.string()), std::string::npos) << "names the file: " << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(MalformedInput, FilesThatAreNotUsableTracesAreOneLineErrors) {
  TempDir dir;
  writeFile(dir / "text.htr", "just some text, not a trace\n");
  expectOneLineError(dir / "text.htr", "not a heaptrail trace");
  std::string wrongMagic(64, '\0');
  std::memcpy(wrongMagic.data(), "\x50\x2A\x4D\x18\x10\x00\x00\x00heaptrail-trac3", 24);
  writeFile(dir / "magic.htr", wrongMagic);
  expectOneLineError(dir / "magic.htr", "wrong magic");

  SyntheticTrace t(dir / "good.htr");
  t.malloc(1 * kMs, 0x1000, 10, 1);
  t.finish(2 * kMs);
  const std::string good = readFile(dir / "good.htr");
  writeFile(dir / "cut-header.htr", good.substr(0, schema::kPreambleSize + 10));
  expectOneLineError(dir / "cut-header.htr", "truncated header");
  std::string badHeader = good;
  badHeader[schema::kPreambleSize + 20] ^= 0x77;  // inside the header's zstd frame
  writeFile(dir / "bad-header.htr", badHeader);
  expectOneLineError(dir / "bad-header.htr", "header");
}

TEST(MalformedInput, DamagedChunkIsSkippedAndTheRestAnalyzed) {
  TempDir dir;
  SyntheticTrace t(dir / "t.htr");
  t.malloc(1 * kMs, 0x1000, 100, 1).flush();
  t.malloc(2 * kMs, 0x2000, 200, 2).flush();
  t.malloc(3 * kMs, 0x3000, 400, 3).flush();
  t.finish(4 * kMs);
  std::string bytes = readFile(dir / "t.htr");
  // Find the second chunk's frame and damage its middle.
  size_t at = schema::kPreambleSize;
  std::vector<size_t> starts;
  while (at < bytes.size()) {
    starts.push_back(at);
    at += ZSTD_findFrameCompressedSize(bytes.data() + at, bytes.size() - at);
  }
  ASSERT_GE(starts.size(), 5u);  // header, 3 chunks, footer
  bytes[(starts[2] + starts[3]) / 2] ^= 0x5a;
  writeFile(dir / "bad.htr", bytes);
  const CliRun r = run({"analyze", (dir / "bad.htr").string(), "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("damaged part"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("\"outstanding_bytes\": 500"), std::string::npos) << "chunks before and after the damage: " << r.out;
}

// Writes a trace whose single chunk is built by `fill` (bypassing ChunkBuilder's checks).
void writeRawChunkTrace(const std::filesystem::path& path, const std::function<void(schema::Chunk::Builder)>& fill) {
  {
    schema::TraceWriter writer(path);
    writer.writeHeader(header);
  }
  capnp::MallocMessageBuilder message;
  fill(message.initRoot<schema::Record>().initChunk());
  const auto flat = capnp::messageToFlatArray(message);
  std::string frame(ZSTD_compressBound(flat.asBytes().size()), '\0');
  frame.resize(ZSTD_compress(frame.data(), frame.size(), flat.asBytes().begin(), flat.asBytes().size(), 1));
  std::ofstream(path, std::ios::binary | std::ios::app) << frame;
}

TEST(MalformedInput, InconsistentChunkContentIsWarnedAboutNotCrashedOn) {
  TempDir dir;
  // Columns of different lengths.
  writeRawChunkTrace(dir / "columns.htr", [](schema::Chunk::Builder c) {
    auto e = c.initEvents();
    e.initKind(3);
    e.initTimeDeltaNs(1);
    e.initPid(3);
  });
  CliRun r = run({"analyze", (dir / "columns.htr").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("damaged part"), std::string::npos) << r.out;

  // Unknown stack, a size no allocator returns, and time going backwards by an hour.
  writeRawChunkTrace(dir / "odd.htr", [](schema::Chunk::Builder c) {
    schema::ChunkBuilder b;
    b.addEvent({schema::EventKind::MALLOC, kStart + 3600 * kSec, kPid, kPid, 0x1000, 64, 77, 0});
    b.addEvent({schema::EventKind::MALLOC, kStart + 1 * kSec, kPid, kPid, 0x2000, 32, 0, 0});
    b.addEvent({schema::EventKind::MALLOC, kStart + 3600 * kSec, kPid, kPid, 0x3000, ~uint64_t{0}, 0, 0});
    b.build(c, 0);
  });
  r = run({"analyze", (dir / "odd.htr").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("stacks referenced by events are not in the trace"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("older than events before them"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("impossible sizes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("96 bytes"), std::string::npos) << "the plausible allocations still count: " << r.out;
}

}  // namespace
}  // namespace heaptrail::testing
