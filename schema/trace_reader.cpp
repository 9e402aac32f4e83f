#include "schema/trace_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <kj/exception.h>
#include <zstd.h>
#include <zstd_errors.h>

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
    const common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw TraceError("cannot open " + name + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw TraceError("cannot read " + name + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw TraceError(name + " is not a regular file");
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
}

TraceReader::~TraceReader() = default;

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
  if (contentSize == ZSTD_CONTENTSIZE_ERROR || contentSize == ZSTD_CONTENTSIZE_UNKNOWN) {
    stop(TraceEnd::Corrupt, "corrupt record " + where + ": no content size");
    return nullptr;
  }
  if (contentSize > kMaxRecordBytes || contentSize % sizeof(capnp::word) != 0 ||
      contentSize == 0) {
    stop(TraceEnd::Corrupt, "corrupt record " + where + ": implausible size " +
                                std::to_string(contentSize));
    return nullptr;
  }

  auto decoded = reuse ? std::move(reuse) : std::make_unique<Decoded>();
  decoded->message.reset();
  decoded->words.resize(contentSize / sizeof(capnp::word));
  const size_t n = ZSTD_decompressDCtx(dctx_.get(), decoded->words.data(), contentSize,
                                       data_ + offset_, frameSize);
  if (ZSTD_isError(n) || n != contentSize) {
    stop(TraceEnd::Corrupt, std::string("corrupt record ") + where + ": " +
                                (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short frame"));
    return nullptr;
  }
  try {
    kj::ArrayPtr<const capnp::word> words(reinterpret_cast<const capnp::word*>(decoded->words.data()),
                                          decoded->words.size());
    decoded->message.emplace(words, readerOptions(decoded->words.size()));
    decoded->record = decoded->message->getRoot<schema::Record>();
    decoded->record.which();  // validates the root pointer now, not at first use
  } catch (const kj::Exception& e) {
    stop(TraceEnd::Corrupt, "corrupt record " + where + ": " + e.getDescription().cStr());
    return nullptr;
  }
  offset_ += frameSize;
  return decoded;
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
  if (end_ != TraceEnd::Reading) return std::nullopt;
  std::unique_ptr<Decoded> previous = std::move(current_);
  std::unique_ptr<Decoded> decoded;
  while (!decoded) {
    if (offset_ == size_) {
      stop(TraceEnd::Truncated, "file ends after chunk " + std::to_string(chunksRead_) +
                                    " without a footer (recording was cut off)");
      return std::nullopt;
    }
    decoded = decodeNext(std::move(previous));
    if (decoded) break;
    if (end_ != TraceEnd::Corrupt) return std::nullopt;
    // A damaged record does not hide the intact ones after it.
    const std::string problem = problem_;
    if (!resync()) return std::nullopt;
    damage_.push_back(problem);
    end_ = TraceEnd::Reading;
    problem_.clear();
  }
  switch (decoded->record.which()) {
    case schema::Record::CHUNK:
      current_ = std::move(decoded);
      ++chunksRead_;
      return current_->record.getChunk();
    case schema::Record::FOOTER:
      footer_ = std::move(decoded);
      stop(TraceEnd::Complete, "");
      return std::nullopt;
    default:
      damage_.push_back("unexpected record kind after chunk " + std::to_string(chunksRead_));
      return nextChunk();
  }
}

}  // namespace heaptrail::schema
