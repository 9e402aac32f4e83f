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
// Errors throw TraceError naming the file.
class TraceWriter {
 public:
  // zstd level: 9 compresses version 2's streams ~10% better than 3 (BENCHMARKS.md) for
  // ~0.1 us of recorder CPU per event.
  static constexpr int kDefaultCompressionLevel = 9;
  // Opens (creating with mode 0600, or truncating) `path`, never through a symbolic
  // link, and locks it (flock) for the writer's lifetime: a second writer on the same
  // file fails instead of interleaving. Nothing is written until writeHeader().
  explicit TraceWriter(std::filesystem::path path, int compressionLevel = kDefaultCompressionLevel);
  // Writes to `fd`, opened by the caller (the recorder's output_file), from its current
  // position; `path` names it in messages. A file that is not regular (a pipe) is
  // streamed to: a failed write cannot be taken back there.
  TraceWriter(common::UniqueFd fd, std::filesystem::path path, int compressionLevel = kDefaultCompressionLevel);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // How events are encoded (time resolution, the encoder's memory); before writeHeader().
  void setEncoding(const EncodingOptions& options) { encoding_ = options; }
  // The options, with the time origin (the header's start), for ChunkBuilder::setEncoding.
  const EncodingOptions& encoding() const { return encoding_; }

  // `fill` sets the header's fields; the schema version and time resolution are set by
  // the writer.
  void writeHeader(const std::function<void(schema::Header::Builder)>& fill);
  // A copy of another trace's header (converting a trace), then `fill`.
  void writeHeader(schema::Header::Reader from, const std::function<void(schema::Header::Builder)>& fill);
  // Writes everything in `chunk` as the next chunk and clears it. Its encoding must be
  // this writer's (the header names the time resolution).
  void writeChunk(ChunkBuilder& chunk);
  void writeFooter(const std::function<void(schema::Footer::Builder)>& fill);
  // Writes `message` (a Record) as the next record, as it is: for tools and tests that
  // craft unusual traces. writeHeader/writeChunk/writeFooter are the normal way.
  void writeRecord(capnp::MessageBuilder& message);

  // Forces written data to stable storage (nothing for pipes).
  void sync();
  // A non-blocking output (a pipe) that is full is waited for; once `fd` is readable
  // (a stop was requested) only kStoppedWriteWaitMs more, then the write fails.
  void setInterruptFd(int fd) { interruptFd_ = fd; }
  static constexpr int kStoppedWriteWaitMs = 2000;

  const std::filesystem::path& path() const { return path_; }
  uint64_t bytesWritten() const { return bytesWritten_; }
  uint64_t uncompressedBytes() const { return uncompressedBytes_; }
  uint64_t chunksWritten() const { return nextSequence_; }

 private:
  void writeHeaderMessage(capnp::MessageBuilder& message, schema::Header::Builder header);
  void writeAll(const void* data, size_t size);
  void waitUntilWritable();
  void configureCompression(int compressionLevel);

  std::filesystem::path path_;
  common::UniqueFd fd_;
  std::unique_ptr<ZSTD_CCtx_s, size_t (*)(ZSTD_CCtx_s*)> cctx_;
  std::vector<uint8_t> compressed_;
  uint64_t bytesWritten_ = 0;
  uint64_t uncompressedBytes_ = 0;
  uint64_t nextSequence_ = 0;
  bool headerWritten_ = false;
  bool seekable_ = true;  // a regular file: a partly written record can be cut off again
  int interruptFd_ = -1;
  EncodingOptions encoding_;
};

}  // namespace heaptrail::schema
