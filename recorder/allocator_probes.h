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
  explicit AllocatorProbes(const ProbeConfig& config);  // loads; throws RecordError
  ~AllocatorProbes();
  AllocatorProbes(const AllocatorProbes&) = delete;
  AllocatorProbes& operator=(const AllocatorProbes&) = delete;

  // Records events of process `pid` (a tgid).
  void addTarget(pid_t pid);
  // Attaches uprobes to the allocator functions `object` defines, limited to process
  // `pid`. Returns the functions probed; throws RecordError if malloc or free is missing.
  std::vector<std::string> attach(const std::filesystem::path& object, pid_t pid);

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
};

// Sets libbpf's message callback: everything with --verbose, else warnings are kept
// and returned by lastLibbpfWarnings() to explain a failure.
void configureLibbpfLogging(bool verbose);
std::string lastLibbpfWarnings();

}  // namespace heaptrail::recorder
