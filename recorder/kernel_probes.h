#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpf/heaptrail_event.h"

struct heaptrail_kernel_bpf;
struct bpf_link;

namespace heaptrail::recorder {

struct KernelProbeConfig {
  uint32_t groups = 0;            // HT_KGROUP_* bits
  uint32_t kernelStackDepth = 32;
  uint32_t userStackDepth = 0;    // 0: no user stacks
  uint64_t ringBufferBytes = 8ull << 20;
  int targetsMapFd = -1;          // the user-space probes' target map, to share (-1: own)
};

// What the running kernel's BTF says about the tracepoints and types kernel mode uses.
struct KernelTypes {
  bool cacheAllocHasCache = true;   // kmem_cache_alloc(call_site, ptr, struct kmem_cache *s, ...): 6.1+
  bool percpuHasBytesAlloc = true;  // percpu_alloc_percpu(call_site, ..., bytes_alloc, gfp): 6.2+
  uint32_t pageStructBytes = 0;     // sizeof(struct page), 0 if unknown
  std::vector<std::string> missingTracepoints;
};

// Reads them from /sys/kernel/btf/vmlinux; throws RecordError when the kernel has no BTF.
KernelTypes readKernelTypes();

// The kernel tracepoint programs, loaded and attached; detached and unloaded when this
// object goes away, on every path.
class KernelProbes {
 public:
  KernelProbes(const KernelProbeConfig& config, const KernelTypes& types);  // throws RecordError
  ~KernelProbes();
  KernelProbes(const KernelProbes&) = delete;
  KernelProbes& operator=(const KernelProbes&) = delete;

  int ringBufferFd() const;
  // Events the BPF side could not deliver since load, by kind (cumulative).
  std::array<uint64_t, HT_KIND_COUNT> lostCounts() const;

 private:
  struct SkeletonDeleter {
    void operator()(heaptrail_kernel_bpf* skel) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };
  std::unique_ptr<heaptrail_kernel_bpf, SkeletonDeleter> skel_;
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;
};

// Parses --kernel-events ("kmalloc,cache,page,percpu", or "all"); 0 on a bad name.
uint32_t parseKernelEventGroups(const std::string& list);
std::vector<std::string> kernelEventGroupNames(uint32_t groups);

}  // namespace heaptrail::recorder
