#include "recorder/bundle.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "common/build_id.h"
#include "common/hex.h"
#include "common/safe_open.h"
#include "common/safe_text.h"
#include "common/tar_header.h"
#include "common/units.h"
#include "recorder/output_file.h"
#include "recorder/record_error.h"
#include "schema/trace_error.h"
#include "schema/trace_reader.h"

namespace heaptrail::recorder {
namespace {

namespace tar = common::tar;

// A zstd stream written to a file descriptor, block by block: a bundle never has to fit
// in the device's memory.
class CompressedOutput {
 public:
  CompressedOutput(int fd, std::string name) : fd_(fd), name_(std::move(name)), context_(ZSTD_createCCtx()) {
    if (!context_) throw RecordError("cannot start compressing " + name_);
    ZSTD_CCtx_setParameter(context_.get(), ZSTD_c_compressionLevel, 9);
    buffer_.resize(ZSTD_CStreamOutSize());
  }

  void write(const char* data, std::size_t size) { push(data, size, ZSTD_e_continue); }
  void finish() { push(nullptr, 0, ZSTD_e_end); }
  uint64_t bytesWritten() const { return written_; }

 private:
  struct ContextFree {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };

  void push(const char* data, std::size_t size, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, size, 0};
    while (true) {
      ZSTD_outBuffer out{buffer_.data(), buffer_.size(), 0};
      const std::size_t left = ZSTD_compressStream2(context_.get(), &out, &in, mode);
      if (ZSTD_isError(left)) throw RecordError("compressing " + name_ + ": " + ZSTD_getErrorName(left));
      writeAll(buffer_.data(), out.pos);
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return;
    }
  }

  void writeAll(const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t done = ::write(fd_, data, size);
      if (done < 0 && errno == EINTR) continue;
      if (done <= 0) throw RecordError("cannot write " + name_ + ": " + std::strerror(errno));
      data += done;
      size -= static_cast<std::size_t>(done);
      written_ += static_cast<uint64_t>(done);
    }
  }

  int fd_;
  std::string name_;
  std::unique_ptr<ZSTD_CCtx, ContextFree> context_;
  std::vector<char> buffer_;
  uint64_t written_ = 0;
};

// Executable mappings with a build-id, each build-id once (the first path seen).
std::map<std::string, std::string> namedFiles(const std::filesystem::path& trace) {
  std::map<std::string, std::string> files;
  schema::TraceReader reader(trace);
  while (auto chunk = reader.nextChunk()) {
    for (auto m : chunk->getMappings()) {
      if (!m.getExecutable() || m.getBuildId().size() == 0) continue;
      const std::string path = m.getPath().cStr();
      if (!path.starts_with('/')) continue;  // [vdso] and the like
      const auto id = m.getBuildId();
      files.try_emplace(std::string(reinterpret_cast<const char*>(id.begin()), id.size()), path);
    }
  }
  return files;
}

std::string memberName(const std::string& buildId) {
  const std::string hex = common::hexBytes(buildId);
  return ".build-id/" + hex.substr(0, 2) + "/" + hex.substr(2);
}

void pad(CompressedOutput& out, uint64_t size) {
  static const tar::Block zeros{};
  if (const uint64_t extra = tar::paddedSize(size) - size) out.write(zeros.data(), extra);
}

// Copies the open file into the archive; false (nothing written) when it cannot be read.
bool packFile(CompressedOutput& out, int fd, const std::string& name, uint64_t size, uint32_t mode, uint64_t mtime) {
  const auto header = tar::regularFileHeader(name, size, mode, mtime);
  if (!header) return false;
  out.write(header->data(), header->size());
  std::vector<char> buffer(1 << 16);
  uint64_t copied = 0;
  while (copied < size) {
    const ssize_t got = ::pread(fd, buffer.data(), std::min<uint64_t>(buffer.size(), size - copied),
                                static_cast<off_t>(copied));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // shrunk while being read: the rest is zeros
    out.write(buffer.data(), static_cast<std::size_t>(got));
    copied += static_cast<uint64_t>(got);
  }
  for (; copied < size; copied += std::min<uint64_t>(buffer.size(), size - copied)) {
    std::fill(buffer.begin(), buffer.end(), 0);
    out.write(buffer.data(), std::min<uint64_t>(buffer.size(), size - copied));
  }
  pad(out, size);
  return true;
}

std::filesystem::path defaultOutput(const std::filesystem::path& trace) {
  std::filesystem::path out = trace;
  return out.replace_extension(".bundle");
}

}  // namespace

BundleSummary writeBundle(const std::filesystem::path& trace, const std::filesystem::path& output) {
  std::map<std::string, std::string> files;
  try {
    files = namedFiles(trace);
  } catch (const schema::TraceError& e) {
    throw RecordError(e.what());
  }
  OutputFile file = OutputFile::open(output);
  common::UniqueFd fd = file.writeFd();
  CompressedOutput out(fd.get(), common::printable(output.string()));
  BundleSummary summary;
  std::ostringstream manifest;
  manifest << "# heaptrail bundle of " << trace.filename().string() << ": build-id, bytes, path on the device\n";
  for (const auto& [buildId, path] : files) {
    const std::string shown = common::printable(path);
    common::UniqueFd in = common::openRegular(path);
    if (!in) {
      summary.skipped.push_back(shown + ": " + common::openErrorText(errno));
      continue;
    }
    const std::string now = common::readBuildId(in.get());
    if (now != buildId) {
      summary.skipped.push_back(shown + ": changed since the recording (build-id " +
                                (now.empty() ? std::string("none") : common::hexBytes(now)) + ", recorded " +
                                common::hexBytes(buildId) + ")");
      continue;
    }
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 ||
        !packFile(out, in.get(), memberName(buildId), static_cast<uint64_t>(st.st_size), st.st_mode,
                  static_cast<uint64_t>(st.st_mtime))) {
      summary.skipped.push_back(shown + ": cannot be read or is larger than 8 GiB");
      continue;
    }
    ++summary.files;
    summary.fileBytes += static_cast<uint64_t>(st.st_size);
    manifest << common::hexBytes(buildId) << " " << st.st_size << " " << path << "\n";
  }
  const std::string text = manifest.str();
  if (const auto header = tar::regularFileHeader("heaptrail-bundle.txt", text.size(), 0644, 0)) {
    out.write(header->data(), header->size());
    out.write(text.data(), text.size());
    pad(out, text.size());
  }
  const tar::Block end{};
  out.write(end.data(), end.size());
  out.write(end.data(), end.size());
  out.finish();
  if (::fsync(fd.get()) != 0 && errno != EINVAL)
    throw RecordError("cannot write " + common::printable(output.string()) + ": " + std::strerror(errno));
  file.commit();
  summary.bundleBytes = out.bytesWritten();
  return summary;
}

int bundleMain(const std::vector<std::string>& args, const std::string& program) {
  const std::string usage = "Usage: " + program + " bundle TRACE [-o FILE]\n";
  std::filesystem::path trace, output;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::cout << usage
                << "\nPacks every executable file the trace's mappings name (the program and its\n"
                   "libraries, each checked against its recorded build-id) into one archive, so\n"
                   "the workstation needs nothing else from this device. The bundle is a\n"
                   "zstd-compressed tar (default: TRACE with the extension .bundle).\n\n"
                   "Options:\n"
                   "  -o, --output FILE   where to write the bundle\n\n"
                   "Examples:\n"
                   "  " << program << " -o app.htr -- ./app && " << program << " bundle app.htr\n"
                   "  heaptrail analyze app.htr --bundle app.bundle --debug-dir ./symbols   (on the workstation)\n"
                   "  tar --zstd -tvf app.bundle                       what is inside\n"
                   "Exit status: 0 ok, 1 error, 2 usage error.\n";
      return 0;
    }
    if (a == "-o" || a == "--output") {
      if (i + 1 == args.size()) {
        std::cerr << program << " bundle: " << a << " needs a file name\n" << usage;
        return 2;
      }
      output = args[++i];
    } else if (a.starts_with("-") && a != "-") {
      std::cerr << program << " bundle: unknown option " << common::printable(a) << "\n" << usage;
      return 2;
    } else if (trace.empty()) {
      trace = a;
    } else {
      std::cerr << program << " bundle: expected one trace, got another: " << common::printable(a) << "\n" << usage;
      return 2;
    }
  }
  if (trace.empty()) {
    std::cerr << program << " bundle: missing the trace\n" << usage;
    return 2;
  }
  if (output.empty()) output = defaultOutput(trace);
  try {
    const BundleSummary s = writeBundle(trace, output);
    for (const auto& line : s.skipped) std::cerr << program << " bundle: not packed: " << line << "\n";
    std::cerr << program << " bundle: " << s.files << " files (" << common::formatBytes(s.fileBytes) << ") packed into "
              << common::printable(output.string()) << " (" << common::formatBytes(s.bundleBytes) << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << program << " bundle: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace heaptrail::recorder
