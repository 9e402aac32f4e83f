#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "bpf/heaptrail_event.h"
#include "recorder/allocator_functions.h"
#include "recorder/allocator_locator.h"
#include "schema/chunk_builder.h"

struct heaptrail_bpf;
struct heaptrail_fork_bpf;
struct bpf_link;

namespace heaptrail::recorder {

struct ProbeConfig {
  uint64_t minSize = 0;
  uint64_t maxSize = 0;
  uint32_t stackDepth = 64;
  uint64_t ringBufferBytes = 2ull << 20;
  bool followForks = false;
  bool releaseStacks = false;
};

// The loaded BPF programs and their uprobes. Everything is detached and unloaded when
// this object goes away, on every path.
class AllocatorProbes {
 public:
  // Loads the programs; throws RecordError. `libc`, when the program uses a shared
  // libc, is where mmap/munmap calls count as the allocator's own (thread stacks,
  // malloc's arenas) rather than the program's.
  AllocatorProbes(const ProbeConfig& config, const std::optional<AllocatorObject>& libc);
  ~AllocatorProbes();
  AllocatorProbes(const AllocatorProbes&) = delete;
  AllocatorProbes& operator=(const AllocatorProbes&) = delete;

  // Records events of process `pid` (a tgid).
  void addTarget(pid_t pid);
  // Hooks the functions of `specs` that `object` defines, for process `pid` (-1: all
  // processes, filtered by the target map). A function at an address already hooked
  // (an alias, or the same file seen twice) is skipped. Returns what was hooked;
  // throws RecordError when a uprobe cannot be attached.
  std::vector<schema::FunctionRecord> attach(const AllocatorObject& object,
                                            const std::vector<FunctionSpec>& specs, pid_t pid);
  // "symbol in object" of each function left out because it is 32-bit arm Thumb code,
  // where the kernel cannot place a uprobe (arch/arm/probes/uprobes takes ARM only).
  const std::vector<std::string>& thumbFunctions() const { return thumbFunctions_; }

  int ringBufferFd() const;
  // Events the BPF side could not deliver since load, by kind (cumulative).
  std::array<uint64_t, HT_KIND_COUNT> lostCounts() const;

 private:
  struct SkeletonDeleter {
    void operator()(heaptrail_bpf* skel) const;
    void operator()(heaptrail_fork_bpf* skel) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };
  std::unique_ptr<heaptrail_bpf, SkeletonDeleter> skel_;
  std::unique_ptr<heaptrail_fork_bpf, SkeletonDeleter> forkSkel_;  // --follow-forks only
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;
  std::set<std::tuple<dev_t, ino_t, uint64_t>> hooked_;  // file and offset of each uprobe
  std::vector<std::string> thumbFunctions_;
  uint16_t nextFunctionId_ = 1;
};

// Sets libbpf's message callback: everything with --verbose, else warnings are kept
// and returned by lastLibbpfWarnings() to explain a failure.
void configureLibbpfLogging(bool verbose);
std::string lastLibbpfWarnings();

}  // namespace heaptrail::recorder
