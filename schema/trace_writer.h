#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "common/unique_fd.h"
#include "schema/chunk_builder.h"
#include "schema/trace.capnp.h"

struct ZSTD_CCtx_s;

namespace heaptrail::schema {

// Writes a trace file: header, chunks, footer, each its own zstd frame, so that a file
// cut anywhere stays readable up to its last complete chunk.
//
// The output is locked (flock) for the writer's lifetime: a second recorder on the
// same file fails instead of interleaving. Errors throw TraceError naming the file.
class TraceWriter {
 public:
  // Opens (creating or truncating) `path`. Nothing is written until writeHeader().
  explicit TraceWriter(std::filesystem::path path, int compressionLevel = 3);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // `fill` sets the header's fields; the schema version is set by the writer.
  void writeHeader(const std::function<void(schema::Header::Builder)>& fill);
  // Writes everything in `chunk` as the next chunk and clears it.
  void writeChunk(ChunkBuilder& chunk);
  void writeFooter(const std::function<void(schema::Footer::Builder)>& fill);

  // Forces written data to stable storage.
  void sync();
  // Removes the file: used when recording fails before anything useful was written,
  // so no half-written file is left pretending to be a trace.
  void discard();

  const std::filesystem::path& path() const { return path_; }
  uint64_t bytesWritten() const { return bytesWritten_; }
  uint64_t uncompressedBytes() const { return uncompressedBytes_; }
  uint64_t chunksWritten() const { return nextSequence_; }

 private:
  void writeRecord(capnp::MessageBuilder& message);
  void writeAll(const void* data, size_t size);

  std::filesystem::path path_;
  common::UniqueFd fd_;
  std::unique_ptr<ZSTD_CCtx_s, size_t (*)(ZSTD_CCtx_s*)> cctx_;
  std::vector<uint8_t> compressed_;
  uint64_t bytesWritten_ = 0;
  uint64_t uncompressedBytes_ = 0;
  uint64_t nextSequence_ = 0;
  bool headerWritten_ = false;
};

}  // namespace heaptrail::schema
