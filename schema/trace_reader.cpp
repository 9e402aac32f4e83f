#include "schema/trace_reader.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <kj/debug.h>
#include <kj/exception.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "common/safe_open.h"
#include "common/unique_fd.h"
#include "schema/trace_error.h"
#include "schema/trace_format.h"

namespace heaptrail::schema {

struct TraceReader::Decoded {
  std::vector<uint64_t> words;  // capnp::word storage, reused from chunk to chunk
  std::optional<capnp::FlatArrayMessageReader> message;
  schema::Record::Reader record;
};

namespace {

capnp::ReaderOptions readerOptions(size_t words) {
  capnp::ReaderOptions options;
  // Every byte of a valid record is visited at most a few times; a hostile message that
  // points many times at the same data runs into this limit instead of looping.
  options.traversalLimitInWords = words * 4 + 1024;
  options.nestingLimit = 16;
  return options;
}

}  // namespace

// The whole file, mapped read-only.
class TraceReader::MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) {
    const std::string name = path.string();
    // Non-blocking, regular files only: a FIFO or device named as a trace is refused,
    // never waited on.
    const common::UniqueFd fd = common::openRegular(path);
    if (!fd) {
      if (errno == EINVAL) throw TraceError(name + " is not a regular file");
      throw TraceError("cannot open " + name + ": " + common::openErrorText(errno));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw TraceError("cannot read " + name + ": " + std::strerror(errno));
    size_ = static_cast<size_t>(st.st_size);
    if (size_ == 0) return;
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (mapped == MAP_FAILED) throw TraceError("cannot read " + name + ": " + std::strerror(errno));
    data_ = static_cast<const uint8_t*>(mapped);
    ::madvise(mapped, size_, MADV_SEQUENTIAL);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

TraceReader::TraceReader(std::filesystem::path path)
    : path_(std::move(path)), file_(std::make_unique<MappedFile>(path_)), dctx_(ZSTD_createDCtx(), ZSTD_freeDCtx) {
  data_ = file_->data();
  size_ = file_->size();
  readHeader();
}

TraceReader::TraceReader(std::string name, const uint8_t* bytes, size_t size)
    : path_(std::move(name)), data_(bytes), size_(size), dctx_(ZSTD_createDCtx(), ZSTD_freeDCtx) {
  readHeader();
}

void TraceReader::readHeader() {
  const std::string name = path_.string();
  if (size_ < kPreambleSize) {
    if (size_ == 0) throw TraceError(name + " is empty: not a heaptrail trace");
    throw TraceError(name + " is not a heaptrail trace (too short)");
  }
  uint32_t magic = 0, length = 0;
  std::memcpy(&magic, data_, 4);
  std::memcpy(&length, data_ + 4, 4);
  if (magic != kSkippableFrameMagic || length != kFileMagic.size() ||
      std::memcmp(data_ + 8, kFileMagic.data(), kFileMagic.size()) != 0)
    throw TraceError(name + " is not a heaptrail trace (wrong magic)");
  offset_ = kPreambleSize;
  // No frame may make the decompressor allocate a window larger than a record can be.
  ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_windowLogMax, 26);

  header_ = decodeNext();
  if (!header_) {
    if (end_ == TraceEnd::Truncated)
      throw TraceError(name + ": truncated header: " + problem_);
    throw TraceError(name + ": unreadable header: " + problem_);
  }
  if (!header_->record.isHeader())
    throw TraceError(name + ": corrupt trace: first record is not a header");
  const uint32_t version = header_->record.getHeader().getSchemaVersion();
  if (version > schema::CURRENT_SCHEMA_VERSION)
    throw TraceError(name + " uses trace schema version " + std::to_string(version) +
                     ", newer than this heaptrail understands (" +
                     std::to_string(schema::CURRENT_SCHEMA_VERSION) + "): upgrade heaptrail");
  if (version == 0) throw TraceError(name + ": corrupt header (schema version 0)");
  timeResolutionNs_ = std::max<uint64_t>(header_->record.getHeader().getTimeResolutionNs(), 1);
}

TraceReader::~TraceReader() { finishReading(); }

schema::Header::Reader TraceReader::header() const { return header_->record.getHeader(); }

std::optional<schema::Footer::Reader> TraceReader::footer() const {
  if (!footer_) return std::nullopt;
  return footer_->record.getFooter();
}

void TraceReader::stop(TraceEnd end, std::string problem) {
  end_ = end;
  problem_ = std::move(problem);
}

std::unique_ptr<TraceReader::Decoded> TraceReader::decodeNext(std::unique_ptr<Decoded> reuse) {
  const uint64_t remaining = size_ - offset_;
  const std::string where = "at byte " + std::to_string(offset_);
  const size_t frameSize = ZSTD_findFrameCompressedSize(data_ + offset_, remaining);
  if (ZSTD_isError(frameSize)) {
    // A frame that runs past the end of the file was cut off while being written;
    // anything else is damage.
    if (ZSTD_getErrorCode(frameSize) == ZSTD_error_srcSize_wrong || remaining < 6)
      stop(TraceEnd::Truncated, "file ends inside a record " + where);
    else
      stop(TraceEnd::Corrupt, std::string("corrupt record ") + where + ": " +
                                  ZSTD_getErrorName(frameSize));
    return nullptr;
  }
  const unsigned long long contentSize = ZSTD_getFrameContentSize(data_ + offset_, frameSize);
  if (contentSize == ZSTD_CONTENTSIZE_ERROR) {
    stop(TraceEnd::Corrupt, "corrupt record " + where + ": bad frame header");
    return nullptr;
  }
  const bool sizeKnown = contentSize != ZSTD_CONTENTSIZE_UNKNOWN;
  if (sizeKnown && (contentSize > kMaxRecordBytes || contentSize % sizeof(capnp::word) != 0 || contentSize == 0)) {
    stop(TraceEnd::Corrupt, "record " + where + (contentSize > kMaxRecordBytes ? " is larger than the limit of 64 MiB per record (" : " has an implausible size (") +
                                std::to_string(contentSize) + " bytes)");
    return nullptr;
  }

  auto decoded = reuse ? std::move(reuse) : std::make_unique<Decoded>();
  decoded->message.reset();
  size_t produced = 0;
  if (const char* error = decompress(frameSize, decoded->words, produced)) {
    stop(TraceEnd::Corrupt, "corrupt record " + where + ": " + error);
    return nullptr;
  }
  if ((sizeKnown && produced != contentSize) || produced == 0 || produced % sizeof(capnp::word) != 0) {
    stop(TraceEnd::Corrupt, "corrupt record " + where + ": content size " + std::to_string(produced) +
                                (sizeKnown ? " differs from the declared " + std::to_string(contentSize) : ""));
    return nullptr;
  }
  const size_t wordCount = produced / sizeof(capnp::word);
  try {
    kj::ArrayPtr<const capnp::word> words(reinterpret_cast<const capnp::word*>(decoded->words.data()), wordCount);
    decoded->message.emplace(words, readerOptions(wordCount));
    decoded->record = decoded->message->getRoot<schema::Record>();
    decoded->record.which();  // validates the root pointer now, not at first use
  } catch (const kj::Exception& e) {
    stop(TraceEnd::Corrupt, "corrupt record " + where + ": " + e.getDescription().cStr());
    return nullptr;
  }
  offset_ += frameSize;
  return decoded;
}

const char* TraceReader::decompress(size_t frameSize, std::vector<uint64_t>& words, size_t& produced) {
  // Streamed into a buffer that grows with what actually comes out (never with what the
  // frame header claims), so a frame that merely claims a large size costs nothing and
  // one that really expands (a decompression bomb) is stopped at kMaxRecordBytes.
  static constexpr size_t kInitialBytes = 256 * 1024;
  // One word past the limit, so that exceeding it is seen.
  static constexpr size_t kMaxBufferBytes = kMaxRecordBytes + sizeof(uint64_t);
  ZSTD_DCtx_reset(dctx_.get(), ZSTD_reset_session_only);
  ZSTD_inBuffer in{data_ + offset_, frameSize, 0};
  if (words.size() * sizeof(uint64_t) < kInitialBytes) words.resize(kInitialBytes / sizeof(uint64_t));
  produced = 0;
  while (true) {
    ZSTD_outBuffer out{words.data(), std::min(words.size() * sizeof(uint64_t), kMaxBufferBytes), produced};
    const size_t left = ZSTD_decompressStream(dctx_.get(), &out, &in);
    if (ZSTD_isError(left)) return ZSTD_getErrorName(left);
    produced = out.pos;
    if (produced > kMaxRecordBytes) return "it is larger than the limit of 64 MiB per record";
    if (left == 0) return nullptr;  // the frame is complete
    if (out.pos < out.size) {
      if (in.pos == in.size) return "the frame ends early";
      continue;
    }
    words.resize(std::min(words.size() * 2, kMaxBufferBytes / sizeof(uint64_t)));
  }
}

bool TraceReader::resync() {
  // Every record is a zstd frame: look for the next frame start after the damage.
  static constexpr uint8_t kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
  for (uint64_t at = offset_ + 1; at + sizeof kZstdMagic <= size_; ++at) {
    if (std::memcmp(data_ + at, kZstdMagic, sizeof kZstdMagic) != 0) continue;
    const size_t n = ZSTD_findFrameCompressedSize(data_ + at, size_ - at);
    if (ZSTD_isError(n)) continue;
    skippedBytes_ += at - offset_;
    offset_ = at;
    return true;
  }
  return false;
}

std::optional<schema::Chunk::Reader> TraceReader::nextChunk() {
  if (readAhead_) return nextChunkReadAhead();
  if (end_ != TraceEnd::Reading || finished_) return std::nullopt;
  // The events of the chunk before that were not asked for still decode (later chunks
  // refer to its allocations), before its buffer is reused.
  while (decoder_.remaining() > 0) {
    try {
      decoder_.next(batch_, 0, std::min(decoder_.remaining(), kEventBatch));
    } catch (const kj::Exception&) {
      break;
    }
  }
  current_ = nextChunkRecord(std::move(current_));
  if (!current_) return std::nullopt;
  const auto chunk = current_->record.getChunk();
  beginChunkEvents(chunk);
  return chunk;
}

std::unique_ptr<TraceReader::Decoded> TraceReader::nextChunkRecord(std::unique_ptr<Decoded> reuse) {
  // A loop, not recursion: a crafted file may hold any number of records of the wrong
  // kind.
  while (true) {
    std::unique_ptr<Decoded> decoded = nextRecord(reuse);
    if (!decoded) return nullptr;
    switch (decoded->record.which()) {
      case schema::Record::CHUNK:
        ++chunksRead_;
        return decoded;
      case schema::Record::FOOTER:
        footer_ = std::move(decoded);
        stop(TraceEnd::Complete, offset_ < size_ ? describeTrailingData() : "");
        return nullptr;
      default:
        noteDamage("unexpected record kind after chunk " + std::to_string(chunksRead_));
        reuse = std::move(decoded);
    }
  }
}

void TraceReader::beginChunkEvents(schema::Chunk::Reader chunk) {
  eventsError_.clear();
  wholeChunkPending_ = false;
  try {
    if (chunk.hasPacked()) {
      if (streaming_) {
        if (batch_.count() < kEventBatch) batch_.resize(kEventBatch);
        decoder_.begin(chunk.getPacked(), chunk.getBaseTimeNs(), timeResolutionNs_);
      } else {
        decoder_.decode(chunk.getPacked(), chunk.getBaseTimeNs(), timeResolutionNs_, events_);
        wholeChunkPending_ = true;
      }
    } else {
      EventDecoder::decodeV1(chunk.getEvents(), chunk.getBaseTimeNs(), events_);
      wholeChunkPending_ = true;
    }
  } catch (const kj::Exception& e) {
    events_.resize(0);
    eventsError_ = e.getDescription().cStr();
  }
}

const DecodedEvents& TraceReader::events() const {
  if (!eventsError_.empty())
    throw kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::heapString(eventsError_.c_str()));
  return events_;
}

size_t TraceReader::nextEvents(const DecodedEvents*& batch) {
  if (readAhead_) return nextEventsReadAhead(batch);
  if (!eventsError_.empty()) return events().count();  // throws
  if (wholeChunkPending_) {
    wholeChunkPending_ = false;
    batch = &events_;
    return events_.count();
  }
  const uint32_t count = std::min(decoder_.remaining(), kEventBatch);
  if (count > 0) decoder_.next(batch_, 0, count);
  batch = &batch_;
  return count;
}

void TraceReader::streamEvents(bool readAhead) {
  streaming_ = true;
  if (!readAhead || readAhead_ || chunksRead_ > 0 || end_ != TraceEnd::Reading) return;
  cpu_set_t cpus;
  if (::sched_getaffinity(0, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) < 2) return;
  // Batches for 32k events (1.4 MiB, within the caches; with 16 batches the two threads
  // waited on each other's hiccups: 10-15% slower); two records
  // besides the one in use, so that the next chunk is read while one is being used.
  constexpr uint32_t kSlots = 64;
  constexpr uint32_t kRecordsOut = 3;
  readAhead_ = std::make_unique<ReadAhead>(kSlots, kEventBatch, kRecordsOut);
  shown_ = position();
  try {
    readAheadThread_ = std::thread([this] { readAheadLoop(); });
  } catch (const std::system_error&) {
    readAhead_.reset();  // no thread to be had: read on the caller's
  }
}

void TraceReader::readAheadLoop() {
  ReadAhead& queue = *readAhead_;
  try {
    while (true) {
      std::unique_ptr<Decoded> reuse;
      if (!queue.acquireRecord(reuse)) return;
      std::unique_ptr<Decoded> record = nextChunkRecord(std::move(reuse));
      if (!record) break;
      const auto chunk = record->record.getChunk();
      ReadAhead::Item item;
      item.kind = ReadAhead::Item::Kind::Chunk;
      item.position = position();
      // The record's memory stays valid while its events are decoded below: the caller
      // gives it back only after taking this chunk's ChunkEnd.
      item.record = std::move(record);
      if (!queue.push(std::move(item)) || !decodeAhead(chunk)) return;
    }
    ReadAhead::Item end;
    end.position = position();
    queue.push(std::move(end));
  } catch (const kj::Exception& e) {
    ReadAhead::Item end;
    end.position = position();
    end.threw = true;
    end.error = e.getDescription().cStr();
    end.errorType = e.getType();
    queue.push(std::move(end));
  } catch (...) {
    ReadAhead::Item end;
    end.position = position();
    end.failure = std::current_exception();
    queue.push(std::move(end));
  }
}

bool TraceReader::decodeAhead(schema::Chunk::Reader chunk) {
  ReadAhead& queue = *readAhead_;
  using Kind = ReadAhead::Item::Kind;
  try {
    if (chunk.hasPacked()) {
      decoder_.begin(chunk.getPacked(), chunk.getBaseTimeNs(), timeResolutionNs_);
      while (const uint32_t count = std::min(decoder_.remaining(), kEventBatch)) {
        uint32_t slot = 0;
        DecodedEvents* out = queue.acquireSlot(slot);
        if (!out) return false;
        try {
          decoder_.next(*out, 0, count);
        } catch (...) {
          queue.returnSlot(slot);
          throw;
        }
        ReadAhead::Item batch;
        batch.kind = Kind::Batch;
        batch.slot = slot;
        batch.count = count;
        if (!queue.push(std::move(batch))) return false;
      }
    } else {
      ReadAhead::Item batch;
      batch.kind = Kind::Batch;
      batch.whole = std::make_unique<DecodedEvents>();
      EventDecoder::decodeV1(chunk.getEvents(), chunk.getBaseTimeNs(), *batch.whole);
      batch.count = static_cast<uint32_t>(batch.whole->count());
      if (batch.count > 0 && !queue.push(std::move(batch))) return false;
    }
  } catch (const kj::Exception& e) {
    ReadAhead::Item error;
    error.kind = Kind::Error;
    error.error = e.getDescription().cStr();
    error.errorType = e.getType();
    if (!queue.push(std::move(error))) return false;
  }
  ReadAhead::Item end;
  end.kind = Kind::ChunkEnd;
  return queue.push(std::move(end));
}

std::optional<schema::Chunk::Reader> TraceReader::nextChunkReadAhead() {
  if (readAheadEnded_ || finished_) return std::nullopt;
  while (true) {
    // Items left of the chunk before (events not asked for) are skipped.
    lastItem_ = readAhead_->pop();
    switch (lastItem_.kind) {
      case ReadAhead::Item::Kind::Chunk:
        if (current_) readAhead_->giveBack(std::move(current_));
        current_ = std::move(lastItem_.record);
        shown_ = lastItem_.position;
        chunkEventsEnded_ = false;
        return current_->record.getChunk();
      case ReadAhead::Item::Kind::End:
        takeEnd();
        return std::nullopt;
      default:
        break;
    }
  }
}

void TraceReader::takeEnd() {
  shown_ = lastItem_.position;
  readAheadEnded_ = true;
  readAheadThread_.join();  // it has ended: its state (end_, footer_, damage_) is final
  if (lastItem_.failure) std::rethrow_exception(lastItem_.failure);
  if (lastItem_.threw)
    throw kj::Exception(lastItem_.errorType, __FILE__, __LINE__, kj::heapString(lastItem_.error.c_str()));
}

size_t TraceReader::nextEventsReadAhead(const DecodedEvents*& batch) {
  if (chunkEventsEnded_ || readAheadEnded_ || finished_ || !current_) return 0;
  lastItem_ = readAhead_->pop();
  switch (lastItem_.kind) {
    case ReadAhead::Item::Kind::Batch:
      batch = lastItem_.whole ? lastItem_.whole.get() : &readAhead_->batch(lastItem_.slot);
      return lastItem_.count;
    case ReadAhead::Item::Kind::Error:
      throw kj::Exception(lastItem_.errorType, __FILE__, __LINE__, kj::heapString(lastItem_.error.c_str()));
    case ReadAhead::Item::Kind::End:  // reading failed inside the chunk
      chunkEventsEnded_ = true;
      takeEnd();
      return 0;
    default:  // ChunkEnd (a Chunk never comes before it)
      chunkEventsEnded_ = true;
      return 0;
  }
}

void TraceReader::finishReading() {
  finished_ = true;
  if (!readAhead_) return;
  readAhead_->stop();
  if (readAheadThread_.joinable()) readAheadThread_.join();
  if (!readAheadEnded_) {
    // The thread read beyond what the caller took: show the state as it was then.
    offset_ = shown_.offset;
    chunksRead_ = shown_.chunks;
    damage_.resize(std::min(damage_.size(), shown_.damageShown));
    damageCount_ = shown_.damageCount;
    skippedBytes_ = shown_.skippedBytes;
    end_ = TraceEnd::Reading;
    problem_.clear();
    footer_.reset();
  }
  lastItem_ = {};
  readAhead_.reset();
}

std::string TraceReader::describeTrailingData() const {
  const uint64_t extra = size_ - offset_;
  std::string what = std::to_string(extra) + " more bytes follow the footer at byte " + std::to_string(offset_);
  const bool anotherTrace = extra >= kPreambleSize && std::memcmp(data_ + offset_ + 8, kFileMagic.data(), kFileMagic.size()) == 0;
  if (anotherTrace)
    return what + ": another trace was appended (concatenated files); only the first is read: split the file there"
                  " (tail -c +" + std::to_string(offset_ + 1) + ")";
  return what + " and were not read";
}

void TraceReader::noteDamage(std::string description) {
  // A crafted file can hold millions of damaged records: keep the first few descriptions
  // and count the rest.
  constexpr size_t kMaxDamageDescriptions = 100;
  if (damage_.size() < kMaxDamageDescriptions) damage_.push_back(std::move(description));
  ++damageCount_;
}

std::unique_ptr<TraceReader::Decoded> TraceReader::nextRecord(std::unique_ptr<Decoded>& reuse) {
  std::unique_ptr<Decoded> decoded;
  while (!decoded) {
    if (offset_ == size_) {
      stop(TraceEnd::Truncated, "file ends after chunk " + std::to_string(chunksRead_) +
                                    " without a footer (recording was cut off)");
      return nullptr;
    }
    decoded = decodeNext(std::move(reuse));
    if (decoded) break;
    if (end_ != TraceEnd::Corrupt) return nullptr;
    // A damaged record does not hide the intact ones after it.
    const std::string problem = problem_;
    if (!resync()) return nullptr;
    noteDamage(problem);
    end_ = TraceEnd::Reading;
    problem_.clear();
  }
  releaseReadPages();
  return decoded;
}

void TraceReader::releaseReadPages() {
  // Records are decompressed into buffers of their own: the file's pages behind the
  // read position are not needed again, so peak memory follows the replay's state, not
  // the file's size (the mapping would otherwise keep every page read resident).
  constexpr uint64_t kReleaseEvery = 8u << 20;
  if (!file_ || offset_ < released_ + kReleaseEvery) return;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t upTo = offset_ / page * page;
  if (upTo <= released_) return;
  ::madvise(const_cast<uint8_t*>(data_) + released_, upTo - released_, MADV_DONTNEED);
  released_ = upTo;
}

}  // namespace heaptrail::schema
