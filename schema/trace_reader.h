#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <capnp/serialize.h>

#include "schema/event_codec.h"
#include "schema/read_ahead_queue.h"
#include "schema/trace.capnp.h"

struct ZSTD_DCtx_s;

namespace heaptrail::schema {

// How reading a trace ended.
enum class TraceEnd {
  Reading,    // not at the end yet
  Complete,   // the footer was read
  Truncated,  // the file ends without a footer (cut off while recording)
  Corrupt,    // a record could not be decoded; chunks before it are intact
};

// Reads a trace file written by TraceWriter, one chunk at a time, so memory does not
// grow with the length of the trace. Opening throws TraceError when the file is not a
// heaptrail trace, is newer than this reader, or has no readable header.
class TraceReader {
 public:
  explicit TraceReader(std::filesystem::path path);
  // Reads a trace already in memory (`bytes` must outlive the reader); `name` is used
  // in messages in place of a file name.
  TraceReader(std::string name, const uint8_t* bytes, size_t size);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  schema::Header::Reader header() const;

  // The next chunk, valid until the next call; nullopt at the end of the trace, after
  // which end() and problem() say why. Cap'n Proto counts every getter call against a
  // traversal limit (4x the chunk's size, so that a hostile file cannot make a reader
  // loop): get each list once per chunk and index into it, never `getX()[i]` in a loop.
  std::optional<schema::Chunk::Reader> nextChunk();
  // The events of the chunk nextChunk() returned, decoded (from version 1's columns or
  // version 2's packed streams), valid until the next call. Throws kj::Exception when
  // they cannot be decoded (the rest of the chunk may still be used).
  const DecodedEvents& events() const;
  // For a reader that uses each event once, as it comes (the replay): from now on
  // nextChunk() leaves a chunk's events to nextEvents(), which decodes them in batches
  // small enough to stay in the CPU's cache, instead of decoding them all into events().
  // With `readAhead`, when this process may run on more than one CPU, a second thread
  // reads, decompresses and decodes the chunks ahead of the caller (a bounded distance:
  // a few records and batches); what the caller sees is the same, in the same order.
  void streamEvents(bool readAhead = true);
  // Reading stops here: from now on nextChunk() returns nullopt, and end(), problem(),
  // damage(), footer(), bytesRead() and chunksRead() describe the chunks returned so far,
  // however far a read-ahead thread had gone beyond them. (The end of the trace, when
  // nextChunk() has returned nullopt, is such a point too.)
  void finishReading();
  // For tests: waits until a read-ahead thread has read as far ahead as it may.
  void awaitReadAhead() {
    if (readAhead_ && !readAheadEnded_) readAhead_->awaitProducer();
  }
  static constexpr uint32_t kEventBatch = 512;
  // The next batch of the current chunk's events (elements [0, returned count) of
  // `batch`, valid until the next call); 0 when the chunk has no more. Throws
  // kj::Exception when they cannot be decoded (the chunk's later events are lost).
  size_t nextEvents(const DecodedEvents*& batch);
  // Event times are multiples of this (1 for version-1 traces).
  uint64_t timeResolutionNs() const { return timeResolutionNs_; }

  TraceEnd end() const { return end_; }
  // Damaged records that were skipped (reading went on with the next intact record),
  // one description each, and how many bytes were skipped in all.
  const std::vector<std::string>& damage() const { return damage_; }
  uint64_t skippedBytes() const { return skippedBytes_; }
  // How many damaged records there were (damage() keeps the first 100 descriptions).
  uint64_t damageCount() const { return damageCount_; }
  // For Truncated and Corrupt: what was wrong and where, for the user. For Complete:
  // empty, or what follows the footer (more data, another trace appended to this one:
  // only the first trace of a file is read).
  const std::string& problem() const { return problem_; }
  // The footer, once nextChunk() has returned nullopt on a complete trace.
  std::optional<schema::Footer::Reader> footer() const;

  const std::filesystem::path& path() const { return path_; }
  uint64_t fileSize() const { return size_; }
  // How far into the file reading has come (for progress displays).
  uint64_t bytesRead() const { return readAhead_ ? shown_.offset : offset_; }
  uint64_t chunksRead() const { return readAhead_ ? shown_.chunks : chunksRead_; }

 private:
  struct Decoded;
  class MappedFile;
  // How far reading stood after a record (what a read-ahead caller has seen).
  struct Position {
    uint64_t offset = 0;
    uint64_t chunks = 0;
    size_t damageShown = 0;
    uint64_t damageCount = 0;
    uint64_t skippedBytes = 0;
  };
  using ReadAhead = ReadAheadQueue<Decoded, Position>;
  Position position() const { return {offset_, chunksRead_, damage_.size(), damageCount_, skippedBytes_}; }
  // The next chunk record (skipping damage and records of other kinds), nullptr at the
  // end (with the footer and end_ set).
  std::unique_ptr<Decoded> nextChunkRecord(std::unique_ptr<Decoded> reuse);
  // Sets up the decoding of the chunk's events for nextEvents() / events().
  void beginChunkEvents(schema::Chunk::Reader chunk);
  // The read-ahead thread's work, and the caller's side of it.
  void readAheadLoop();
  bool decodeAhead(schema::Chunk::Reader chunk);
  std::optional<schema::Chunk::Reader> nextChunkReadAhead();
  size_t nextEventsReadAhead(const DecodedEvents*& batch);
  // The End item was taken: the thread has ended (rethrows what it threw).
  void takeEnd();
  void readHeader();
  // After a damaged record: moves offset_ to the next plausible record; false if none.
  bool resync();
  // Decodes the record at offset_; nullptr (with end_/problem_ set) when it cannot.
  // `reuse`: a record no longer needed, whose buffer is reused.
  std::unique_ptr<Decoded> decodeNext(std::unique_ptr<Decoded> reuse = nullptr);
  void stop(TraceEnd end, std::string problem);
  // The next intact record (skipping damage), nullptr at the end.
  std::unique_ptr<Decoded> nextRecord(std::unique_ptr<Decoded>& reuse);
  // Decompresses the frame of `frameSize` bytes at offset_ into `words` (grown as
  // needed, never much past kMaxRecordBytes). Returns an error text, or nullptr with
  // `produced` set.
  const char* decompress(size_t frameSize, std::vector<uint64_t>& words, size_t& produced);
  void noteDamage(std::string description);
  void releaseReadPages();
  std::string describeTrailingData() const;

  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::unique_ptr<MappedFile> file_;  // unless reading from memory
  uint64_t offset_ = 0;
  uint64_t released_ = 0;  // file pages before this were given back (madvise)
  std::unique_ptr<ZSTD_DCtx_s, size_t (*)(ZSTD_DCtx_s*)> dctx_;
  std::unique_ptr<Decoded> header_;
  std::unique_ptr<Decoded> current_;
  std::unique_ptr<Decoded> footer_;
  TraceEnd end_ = TraceEnd::Reading;
  std::string problem_;
  std::vector<std::string> damage_;
  uint64_t skippedBytes_ = 0;
  uint64_t damageCount_ = 0;
  uint64_t timeResolutionNs_ = 1;
  // Version 2 streams refer to earlier chunks: every chunk is decoded as it is read.
  EventDecoder decoder_;
  DecodedEvents events_;
  std::string eventsError_;
  bool streaming_ = false;
  bool wholeChunkPending_ = false;  // events_ holds the whole chunk: nextEvents() returns it once
  DecodedEvents batch_;
  uint64_t chunksRead_ = 0;
  bool finished_ = false;
  // Read-ahead: the queue and the thread filling it; the caller's view of how far reading
  // stood; the item nextEvents() returned last (its events stay valid until the next
  // call); whether the caller has taken the End item, or the current chunk's ChunkEnd.
  std::unique_ptr<ReadAhead> readAhead_;
  std::thread readAheadThread_;
  Position shown_;
  ReadAhead::Item lastItem_;
  bool readAheadEnded_ = false;
  bool chunkEventsEnded_ = false;
};

}  // namespace heaptrail::schema
