#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>

namespace heaptrail::recorder {

// One BPF program on many uprobes of one file, as one kernel object: a uprobe_multi
// link (Linux 6.6+). Attaching and, above all, detaching cost one kernel round (an RCU
// grace period each time a probe goes) per link instead of per function, which is most
// of how long the recorder takes to stop. libbpf 1.1.2 predates this link type, so it
// is created with the bpf(2) syscall directly; the program must have been loaded with
// the expected attach type kUprobeMultiAttachType.
inline constexpr uint32_t kUprobeMultiAttachType = 48;  // BPF_TRACE_UPROBE_MULTI

// Whether this kernel creates uprobe_multi links (probed once, then remembered).
bool uprobeMultiSupported();

// An owned link file descriptor; closing it detaches every probe of the link.
class UprobeMultiLink {
 public:
  UprobeMultiLink() = default;
  explicit UprobeMultiLink(int fd) : fd_(fd) {}
  UprobeMultiLink(UprobeMultiLink&& other) noexcept : fd_(other.release()) {}
  UprobeMultiLink& operator=(UprobeMultiLink&& other) noexcept;
  ~UprobeMultiLink();
  int fd() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// Attaches `programFd` to `file` at every offset of `offsets` (file offsets), each with
// the BPF cookie of the same index, for process `pid` only (its threads; 0: every
// process), as entry probes or, with `returnProbes`, as return probes. Returns the link,
// or throws RecordError naming `what`.
UprobeMultiLink attachUprobeMulti(int programFd, const std::string& file, std::span<const uint64_t> offsets,
                                  std::span<const uint64_t> cookies, pid_t pid, bool returnProbes,
                                  const std::string& what);

}  // namespace heaptrail::recorder
