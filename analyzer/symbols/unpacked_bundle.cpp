#include "analyzer/symbols/unpacked_bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "common/safe_open.h"
#include "common/safe_text.h"
#include "common/tar_header.h"
#include "common/unique_fd.h"

namespace heaptrail::symbols {
namespace {

namespace tar = common::tar;
using common::UniqueFd;

// The decompressed bytes of a zstd file, read on demand.
class DecompressedInput {
 public:
  DecompressedInput(UniqueFd fd, std::string name)
      : fd_(std::move(fd)), name_(std::move(name)), context_(ZSTD_createDCtx()) {
    if (!context_) throw std::runtime_error("cannot start decompressing " + name_);
    in_.resize(ZSTD_DStreamInSize());
  }

  // Fills `size` bytes; false at the end of the data (or at damage: see problem()).
  bool read(char* data, std::size_t size) {
    ZSTD_outBuffer out{data, size, 0};
    while (out.pos < out.size) {
      if (inPos_ == inSize_) {
        const ssize_t got = ::read(fd_.get(), in_.data(), in_.size());
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          if (got < 0) problem_ = std::strerror(errno);
          return false;
        }
        inSize_ = static_cast<std::size_t>(got);
        inPos_ = 0;
      }
      ZSTD_inBuffer in{in_.data(), inSize_, inPos_};
      const std::size_t r = ZSTD_decompressStream(context_.get(), &out, &in);
      inPos_ = in.pos;
      if (ZSTD_isError(r)) {
        problem_ = std::string("not a zstd stream or damaged (") + ZSTD_getErrorName(r) + ")";
        return false;
      }
    }
    return true;
  }
  const std::string& problem() const { return problem_; }

 private:
  struct ContextFree {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  };
  UniqueFd fd_;
  std::string name_;
  std::unique_ptr<ZSTD_DCtx, ContextFree> context_;
  std::vector<char> in_;
  std::size_t inSize_ = 0, inPos_ = 0;
  std::string problem_;
};

bool isHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// ".build-id/xx/rest" with lowercase hex: the only names unpacked.
bool isBuildIdName(const std::string& name) {
  constexpr std::string_view prefix = ".build-id/";
  if (!name.starts_with(prefix) || name.size() < prefix.size() + 4 || name[prefix.size() + 2] != '/') return false;
  const std::string_view rest(name.data() + prefix.size(), name.size() - prefix.size());
  return isHex(rest.substr(0, 2)) && isHex(rest.substr(3)) && rest.size() - 3 <= 126;
}

}  // namespace

UnpackedBundle::UnpackedBundle(const std::filesystem::path& bundle) {
  const std::string shown = common::printable(bundle.string());
  UniqueFd fd = common::openRegular(bundle);
  if (!fd) throw std::runtime_error("cannot open bundle " + shown + ": " + common::openErrorText(errno));
  DecompressedInput input(std::move(fd), shown);

  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/heaptrail-bundle-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot create a directory to unpack " + shown + ": " + std::strerror(errno));
  dir_ = pattern;
  UniqueFd root(::open(dir_.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!root || ::mkdirat(root.get(), ".build-id", 0700) != 0) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw std::runtime_error("cannot unpack " + shown + " into " + dir_.string() + ": " + std::strerror(errno));
  }

  uint64_t unpacked = 0;
  std::vector<char> buffer(1 << 16);
  tar::Block block;
  bool ended = false;
  while (input.read(block.data(), block.size())) {
    tar::Member member;
    const auto status = tar::parseHeader(block, member);
    if (status == tar::HeaderStatus::EndOfArchive) {
      ended = true;
      break;
    }
    if (status == tar::HeaderStatus::Invalid) {
      notes_.push_back("bundle " + shown + ": damaged archive header; members after it are ignored");
      ended = true;
      break;
    }
    const bool regular = member.type == '0' || member.type == '\0';
    UniqueFd out;
    if (!regular || !isBuildIdName(member.name)) {
      if (member.name != "heaptrail-bundle.txt")
        notes_.push_back("bundle " + shown + ": skipped member " + common::printable(member.name) +
                         (regular ? " (not a .build-id/xx/rest name)" : " (not a regular file)"));
    } else if (unpacked + member.size > kMaxBytes) {
      notes_.push_back("bundle " + shown + ": skipped " + member.name + ": more than " +
                       std::to_string(kMaxBytes >> 30) + " GiB unpacked in all");
    } else {
      const std::string subdir = member.name.substr(0, 12);  // ".build-id/xx"
      if (::mkdirat(root.get(), subdir.c_str(), 0700) != 0 && errno != EEXIST) {
        notes_.push_back("bundle " + shown + ": cannot create " + subdir + ": " + std::strerror(errno));
      } else {
        out.reset(::openat(root.get(), member.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) notes_.push_back("bundle " + shown + ": " + member.name + " twice or not writable: kept the first");
      }
    }
    // Read (and keep or drop) the member's data, block-padded.
    uint64_t left = tar::paddedSize(member.size), data = member.size;
    bool complete = true;
    while (left > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(buffer.size(), left));
      if (!input.read(buffer.data(), n)) {
        complete = false;
        break;
      }
      const std::size_t keep = static_cast<std::size_t>(std::min<uint64_t>(n, data));
      if (out && keep > 0 && ::write(out.get(), buffer.data(), keep) != static_cast<ssize_t>(keep)) {
        notes_.push_back("bundle " + shown + ": cannot write " + member.name + ": " + std::strerror(errno));
        out.reset();
        ::unlinkat(root.get(), member.name.c_str(), 0);
      }
      data -= keep;
      left -= n;
    }
    if (!complete) {
      if (out) {
        out.reset();
        ::unlinkat(root.get(), member.name.c_str(), 0);
      }
      break;
    }
    if (out) {
      ++files_;
      unpacked += member.size;
    }
  }
  if (!ended)
    notes_.push_back("bundle " + shown + " is cut off or damaged" +
                     (input.problem().empty() ? std::string() : " (" + input.problem() + ")") +
                     ": the members before that are used");
}

UnpackedBundle::~UnpackedBundle() {
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

}  // namespace heaptrail::symbols
