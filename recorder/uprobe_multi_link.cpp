#include "recorder/uprobe_multi_link.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

// The BPF_LINK_CREATE attribute as the kernel (6.6+) reads it for a uprobe_multi link;
// Debian's UAPI headers (6.1) do not have these fields yet.
struct LinkCreateUprobeMulti {
  uint32_t progFd;
  uint32_t targetFd;
  uint32_t attachType;
  uint32_t flags;
  uint64_t path;             // const char*
  uint64_t offsets;          // const uint64_t*
  uint64_t refCtrOffsets;    // const uint64_t*, may be 0
  uint64_t cookies;          // const uint64_t*, may be 0
  uint32_t count;
  uint32_t multiFlags;       // kReturnProbes
  uint32_t pid;
  uint32_t padding;
};
static_assert(offsetof(LinkCreateUprobeMulti, path) == 16, "link_create's union starts at 16");
static_assert(offsetof(LinkCreateUprobeMulti, count) == 48);
static_assert(sizeof(LinkCreateUprobeMulti) == 64);
constexpr uint32_t kReturnProbes = 1;  // BPF_F_UPROBE_MULTI_RETURN

int linkCreate(int programFd, const char* path, const uint64_t* offsets, const uint64_t* cookies, uint32_t count,
               uint32_t pid, bool returnProbes) {
  LinkCreateUprobeMulti attr;
  std::memset(&attr, 0, sizeof attr);
  attr.progFd = static_cast<uint32_t>(programFd);
  attr.attachType = kUprobeMultiAttachType;
  attr.path = reinterpret_cast<uint64_t>(path);
  attr.offsets = reinterpret_cast<uint64_t>(offsets);
  attr.cookies = reinterpret_cast<uint64_t>(cookies);
  attr.count = count;
  attr.multiFlags = returnProbes ? kReturnProbes : 0;
  attr.pid = pid;
  return static_cast<int>(::syscall(SYS_bpf, BPF_LINK_CREATE, &attr, sizeof attr));
}

bool probeSupport() {
  // A program that returns 0, loaded for uprobe_multi; a link on a directory is then
  // refused with EBADF by a kernel that knows the link type, EINVAL by one that does not.
  const bpf_insn program[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = static_cast<bpf_attach_type>(kUprobeMultiAttachType));
  const int fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "ht_multi_probe", "GPL", program, 2, &opts);
  if (fd < 0) return false;
  const uint64_t offset = 0;
  const int link = linkCreate(fd, "/", &offset, nullptr, 1, 0, false);
  const bool supported = link < 0 && errno == EBADF;
  if (link >= 0) ::close(link);
  ::close(fd);
  return supported;
}

}  // namespace

bool uprobeMultiSupported() {
  static std::once_flag once;
  static bool supported = false;
  std::call_once(once, [] {
    const char* force = std::getenv("HEAPTRAIL_NO_UPROBE_MULTI");  // tests of the older kernels' path
    supported = !(force && *force) && probeSupport();
  });
  return supported;
}

UprobeMultiLink& UprobeMultiLink::operator=(UprobeMultiLink&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UprobeMultiLink::~UprobeMultiLink() {
  if (fd_ >= 0) ::close(fd_);
}

UprobeMultiLink attachUprobeMulti(int programFd, const std::string& file, std::span<const uint64_t> offsets,
                                  std::span<const uint64_t> cookies, pid_t pid, bool returnProbes,
                                  const std::string& what) {
  const int fd = linkCreate(programFd, file.c_str(), offsets.data(), cookies.data(),
                            static_cast<uint32_t>(offsets.size()), static_cast<uint32_t>(pid), returnProbes);
  if (fd < 0)
    throw RecordError("cannot attach " + std::string(returnProbes ? "return " : "") + "uprobes to " + what + ": " +
                      std::strerror(errno));
  return UprobeMultiLink(fd);
}

}  // namespace heaptrail::recorder
