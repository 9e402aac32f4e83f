#include "schema/trace_writer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <capnp/serialize.h>
#include <zstd.h>

#include "schema/trace_error.h"
#include "schema/trace_format.h"

namespace heaptrail::schema {
namespace {

constexpr int kHashLog = 17;   // 512 KiB of hash table
constexpr int kChainLog = 16;  // 256 KiB of chain table

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

TraceWriter::TraceWriter(std::filesystem::path path, int compressionLevel)
    : path_(std::move(path)), cctx_(ZSTD_createCCtx(), ZSTD_freeCCtx) {
  // Not O_TRUNC: the lock must be held before the old content is dropped, or a second
  // recorder would clobber the first one's file.
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  if (!fd_) throw TraceError("cannot write " + path_.string() + ": " + errnoText(errno));
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK)
      throw TraceError("cannot write " + path_.string() + ": another heaptrail recorder is writing it");
    throw TraceError("cannot lock " + path_.string() + ": " + errnoText(err));
  }
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) throw TraceError("cannot write " + path_.string() + ": " + errnoText(errno));
  if (!S_ISREG(st.st_mode)) throw TraceError("cannot write " + path_.string() + ": not a regular file");
  if (::ftruncate(fd_.get(), 0) != 0) throw TraceError("cannot write " + path_.string() + ": " + errnoText(errno));
  configureCompression(compressionLevel);
}

TraceWriter::TraceWriter(common::UniqueFd fd, std::filesystem::path path, int compressionLevel)
    : path_(std::move(path)), fd_(std::move(fd)), cctx_(ZSTD_createCCtx(), ZSTD_freeCCtx) {
  struct stat st {};
  if (!fd_ || ::fstat(fd_.get(), &st) != 0) throw TraceError("cannot write " + path_.string() + ": " + errnoText(errno));
  seekable_ = S_ISREG(st.st_mode);
  configureCompression(compressionLevel);
}

void TraceWriter::configureCompression(int compressionLevel) {
  if (!cctx_) throw TraceError("cannot create a zstd compression context");
  ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_compressionLevel, compressionLevel);
  // The level's search, with match tables sized for a chunk (a few hundred KiB), not
  // for the level's default input: level 9 on a 1 MiB chunk would keep 6-13 MiB of
  // tables in the recorder (the device footprint), for no measurable gain in size.
  ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_hashLog, kHashLog);
  ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_chainLog, kChainLog);
  ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_contentSizeFlag, 1);
}

TraceWriter::~TraceWriter() = default;

void TraceWriter::writeAll(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  const uint64_t recordStart = bytesWritten_;
  while (size > 0) {
    const ssize_t n = ::write(fd_.get(), p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        waitUntilWritable();
        continue;
      }
      const int err = errno;
      // Drop the partial record so the file ends with a complete one (and a footer
      // saying why may still fit): a full disk must not leave a damaged tail.
      if (seekable_ && bytesWritten_ != recordStart && ::ftruncate(fd_.get(), static_cast<off_t>(recordStart)) == 0 &&
          ::lseek(fd_.get(), static_cast<off_t>(recordStart), SEEK_SET) >= 0)
        bytesWritten_ = recordStart;
      throw TraceError("cannot write " + path_.string() + ": " + errnoText(err) +
                       (err == ENOSPC ? " (disk full)" : ""));
    }
    p += n;
    size -= static_cast<size_t>(n);
    bytesWritten_ += static_cast<uint64_t>(n);
  }
}

void TraceWriter::waitUntilWritable() {
  pollfd fds[2] = {{fd_.get(), POLLOUT, 0}, {interruptFd_, POLLIN, 0}};
  bool interrupted = false;
  while (true) {
    // Once a stop was requested, a reader that is merely slow still gets a moment.
    const int n = ::poll(fds, interruptFd_ >= 0 && !interrupted ? 2 : 1, interrupted ? kStoppedWriteWaitMs : -1);
    if (n < 0 && errno != EINTR) throw TraceError("cannot write " + path_.string() + ": " + errnoText(errno));
    if (n == 0 && interrupted)
      throw TraceError("cannot write " + path_.string() + ": stopped while its reader was not reading");
    if (n <= 0) continue;
    if (fds[0].revents) return;  // writable, or an error the next write reports
    if (fds[1].revents & POLLIN) interrupted = true;
  }
}

void TraceWriter::writeRecord(capnp::MessageBuilder& message) {
  const kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  const auto bytes = flat.asBytes();
  compressed_.resize(ZSTD_compressBound(bytes.size()));
  const size_t n = ZSTD_compress2(cctx_.get(), compressed_.data(), compressed_.size(),
                                  bytes.begin(), bytes.size());
  if (ZSTD_isError(n)) throw TraceError(std::string("zstd: ") + ZSTD_getErrorName(n));
  writeAll(compressed_.data(), n);
  uncompressedBytes_ += bytes.size();
}

void TraceWriter::writeHeader(const std::function<void(schema::Header::Builder)>& fill) {
  capnp::MallocMessageBuilder message;
  auto header = message.initRoot<schema::Record>().initHeader();
  fill(header);
  writeHeaderMessage(message, header);
}

void TraceWriter::writeHeader(schema::Header::Reader from, const std::function<void(schema::Header::Builder)>& fill) {
  capnp::MallocMessageBuilder message;
  message.initRoot<schema::Record>().setHeader(from);
  auto header = message.getRoot<schema::Record>().getHeader();
  fill(header);
  writeHeaderMessage(message, header);
}

void TraceWriter::writeHeaderMessage(capnp::MessageBuilder& message, schema::Header::Builder header) {
  uint8_t preamble[kPreambleSize];
  const uint32_t magic = kSkippableFrameMagic;
  const uint32_t length = kFileMagic.size();
  std::memcpy(preamble, &magic, 4);  // zstd frames are little endian, as is every target we run on
  std::memcpy(preamble + 4, &length, 4);
  std::memcpy(preamble + 8, kFileMagic.data(), kFileMagic.size());
  writeAll(preamble, sizeof preamble);

  header.setSchemaVersion(schema::CURRENT_SCHEMA_VERSION);
  encoding_.timeResolutionNs = std::max<uint64_t>(encoding_.timeResolutionNs, 1);
  encoding_.timeOriginNs = header.getStartTimeNs();
  header.setTimeResolutionNs(encoding_.timeResolutionNs);
  writeRecord(message);
  headerWritten_ = true;
}

void TraceWriter::writeChunk(ChunkBuilder& chunk) {
  capnp::MallocMessageBuilder message;
  const EncodingOptions& used = chunk.encoding();
  if (used.timeResolutionNs != encoding_.timeResolutionNs ||
      (used.timeResolutionNs > 1 && used.timeOriginNs != encoding_.timeOriginNs))
    throw TraceError("internal error: chunk encoded with other options than " + path_.string() +
                     "'s header (ChunkBuilder::setEncoding(writer.encoding()) after writeHeader)");
  chunk.build(message.initRoot<schema::Record>().initChunk(), nextSequence_++);
  writeRecord(message);
  chunk.clear();
}

void TraceWriter::writeFooter(const std::function<void(schema::Footer::Builder)>& fill) {
  capnp::MallocMessageBuilder message;
  auto footer = message.initRoot<schema::Record>().initFooter();
  footer.setChunksTotal(nextSequence_);
  fill(footer);
  // Counts the footer itself approximately; exact enough for a ratio.
  footer.setUncompressedBytes(uncompressedBytes_ + capnp::computeSerializedSizeInWords(message) * 8);
  writeRecord(message);
}

void TraceWriter::sync() {
  if (!seekable_) return;
  if (::fdatasync(fd_.get()) != 0 && errno != EINVAL)
    throw TraceError("cannot write " + path_.string() + ": " + errnoText(errno));
}

}  // namespace heaptrail::schema
