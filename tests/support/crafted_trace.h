// Builds hostile traces for the reader's limits with the project's own writer: records
// of the wrong kind, records that expand enormously, zstd frames that lie about their
// size, traces appended to traces.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <algorithm>
#include <string>

#include <capnp/message.h>

#include "schema/chunk_builder.h"
#include "schema/trace_writer.h"
#include "tests/support/synthetic_header.h"

namespace heaptrail::testing {

class CraftedTrace {
 public:
  explicit CraftedTrace(const std::filesystem::path& path, uint64_t startTimeNs = 1'000'000'000, uint32_t pid = 4242)
      : writer_(path), spec_{startTimeNs, pid} {
    writer_.writeHeader([&](schema::Header::Builder h) { fillSyntheticHeader(h, spec_); });
  }

  // `count` more header records, where only chunks may follow the first.
  CraftedTrace& extraHeaders(size_t count) {
    for (size_t i = 0; i < count; ++i) {
      capnp::MallocMessageBuilder message;
      fillSyntheticHeader(message.initRoot<schema::Record>().initHeader(), spec_);
      writer_.writeRecord(message);
    }
    return *this;
  }
  // A chunk with whatever `fill` adds.
  CraftedTrace& chunk(const std::function<void(schema::ChunkBuilder&)>& fill) {
    schema::ChunkBuilder builder;
    fill(builder);
    writer_.writeChunk(builder);
    return *this;
  }
  // A chunk holding one allocation of `size` bytes at `address` (stack 0).
  CraftedTrace& malloc(uint64_t timeNs, uint64_t address, uint64_t size) {
    return chunk([&](schema::ChunkBuilder& c) {
      c.addEvent({schema::EventKind::MALLOC, timeNs, spec_.pid, spec_.pid, address, size, 0, 0});
    });
  }
  // A chunk with one mapping whose path is `pathBytes` bytes of 'A': tiny compressed,
  // huge decompressed.
  CraftedTrace& hugeMappingPath(uint64_t timeNs, size_t pathBytes) {
    return chunk([&](schema::ChunkBuilder& c) {
      c.addMapping({timeNs, spec_.pid, 0x400000, 0x401000, 0, std::string(pathBytes, 'A'), "",
                    schema::MappingSource::MMAP_EVENT, true, 0});
    });
  }
  void footer(uint64_t endTimeNs) {
    writer_.writeFooter([&](schema::Footer::Builder f) {
      f.setEndTimeNs(endTimeNs);
      f.setEndReason(schema::EndReason::TARGET_EXITED);
    });
  }
  uint64_t bytesWritten() const { return writer_.bytesWritten(); }

 private:
  schema::TraceWriter writer_;
  SyntheticHeader spec_;
};

// A zstd frame whose header claims `claimedBytes` of content (single segment; 0: says
// nothing of its size) but whose blocks produce `actualBytes` (zeros, in RLE blocks of
// 128 KiB, 4 bytes each): what a "bomb" looks like. Append it with appendBytes().
inline std::string lyingZstdFrame(uint64_t claimedBytes, uint64_t actualBytes) {
  std::string frame;
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) frame.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(0xFD2FB528, 4);
  if (claimedBytes > 0) {
    put(0xE0, 1);  // frame header descriptor: 8-byte content size, single segment, no checksum
    put(claimedBytes, 8);
  } else {
    put(0x00, 1);        // no content size, a window descriptor follows
    put(7 << 3, 1);      // window of 2^(10+7) = 128 KiB
  }
  constexpr uint64_t kBlock = 128 * 1024;
  do {
    const uint64_t n = std::min(actualBytes, kBlock);
    actualBytes -= n;
    const uint32_t last = actualBytes == 0 ? 1 : 0;
    put(last | (1u << 1) /* RLE */ | (n << 3), 3);
    put(0, 1);
  } while (actualBytes > 0);
  return frame;
}

inline void appendBytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::app) << bytes;
}

inline std::string readBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace heaptrail::testing
