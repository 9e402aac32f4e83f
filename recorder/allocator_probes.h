#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bpf/heaptrail_event.h"

struct heaptrail_bpf;
struct bpf_link;

namespace heaptrail::recorder {

struct ProbeConfig {
  uint64_t minSize = 0;
  uint64_t maxSize = 0;
  uint32_t stackDepth = 64;
  uint64_t ringBufferBytes = 4ull << 20;
  bool verbose = false;
};

// The loaded BPF programs and their uprobes on one allocator object. Everything is
// detached and unloaded when this object goes away, on every path.
class AllocatorProbes {
 public:
  // Finds the allocator functions in `object` and loads the programs; throws
  // RecordError. `sharedAllocator`: the object is a library (libc), not the program
  // itself, so mmap/munmap calls from inside it are the allocator's own.
  AllocatorProbes(const ProbeConfig& config, const std::filesystem::path& object, bool sharedAllocator);
  ~AllocatorProbes();
  AllocatorProbes(const AllocatorProbes&) = delete;
  AllocatorProbes& operator=(const AllocatorProbes&) = delete;

  // Records events of process `pid` (a tgid).
  void addTarget(pid_t pid);
  // Attaches the uprobes, limited to process `pid`. Throws RecordError on failure.
  void attach(pid_t pid);
  // The functions probed. An alias (same address as a function before it, as glibc's
  // aligned_alloc and memalign) is not probed twice: its calls carry the first's kind.
  const std::vector<std::string>& probedFunctions() const { return probed_; }

  int ringBufferFd() const;
  // Events the BPF side could not deliver since load, by kind (cumulative).
  std::array<uint64_t, HT_KIND_COUNT> lostCounts() const;

 private:
  struct SkeletonDeleter {
    void operator()(heaptrail_bpf* skel) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };
  std::unique_ptr<heaptrail_bpf, SkeletonDeleter> skel_;
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;
  std::filesystem::path object_;
  std::vector<std::pair<size_t, uint64_t>> sites_;  // probe spec index, file offset
  std::vector<std::string> probed_;
};

// Sets libbpf's message callback: everything with --verbose, else warnings are kept
// and returned by lastLibbpfWarnings() to explain a failure.
void configureLibbpfLogging(bool verbose);
std::string lastLibbpfWarnings();

}  // namespace heaptrail::recorder
