#pragma once

#include <sys/types.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bpf/heaptrail_event.h"
#include "bpf/unwind_table.h"
#include "recorder/allocator_functions.h"
#include "recorder/allocator_locator.h"
#include "recorder/unwind/stack_mode.h"
#include "recorder/uprobe_multi_link.h"
#include "schema/records.h"

struct heaptrail_bpf;
struct bpf_link;

namespace heaptrail::recorder {

// Where each function's probe goes: the cheapest instruction every call runs
// (recorder/probe_sites.h), or the first instruction (a debugging aid, and the
// reference the tests compare the cheap sites with).
enum class ProbeSiteMode { Cheap, Entry };

struct ProbeConfig {
  uint64_t minSize = 0;
  uint64_t maxSize = 0;
  uint32_t stackDepth = 64;
  uint64_t ringBufferBytes = 2ull << 20;
  bool releaseStacks = false;
  ProbeSiteMode sites = ProbeSiteMode::Cheap;
  unwind::StackMode stackMode = unwind::StackMode::Auto;
};

// The loaded BPF programs and their uprobes. Probes are per process: a process that is
// not a target never traps. Everything is detached and unloaded when this object goes
// away, on every path.
class AllocatorProbes {
 public:
  // Loads the programs; throws RecordError. `libc`, when the program uses a shared
  // libc, is where mmap/munmap calls count as the allocator's own (thread stacks,
  // malloc's arenas) rather than the program's, and where a free() it calls itself is
  // recorded as such (libcFree).
  AllocatorProbes(const ProbeConfig& config, const std::optional<AllocatorObject>& libc);
  ~AllocatorProbes();
  AllocatorProbes(const AllocatorProbes&) = delete;
  AllocatorProbes& operator=(const AllocatorProbes&) = delete;

  // Records events of process `pid` (a tgid) / stops, and drops its probes.
  void addTarget(pid_t pid);
  void removeTarget(pid_t pid);
  // The address of the kernel's return-probe trampoline in `pid` ("[uprobes]"), which
  // lets the BPF side tell a call in progress from one whose return it never saw.
  void setTrampoline(pid_t pid, uint64_t address);

  // Hooks the functions of `specs` that `object` defines, in process `pid`: one
  // uprobe_multi link for the entries and one for the returns (or, on kernels before
  // 6.6, one link per probe). A function at an address already hooked (an alias) is
  // hooked once. Returns the functions placed for the first time (each object is
  // examined once); throws RecordError when a probe cannot be attached.
  std::vector<schema::FunctionRecord> attach(const AllocatorObject& object, const std::vector<FunctionSpec>& specs,
                                            pid_t pid);
  // Hooks, in a new process `child`, what is hooked in `parent` (a forked child runs its
  // parent's code); every object hooked so far when the parent is not known.
  void attachLikeParent(pid_t child, pid_t parent);
  // "symbol in object" of each function left out because it is 32-bit arm Thumb code,
  // where the kernel cannot place a uprobe (arch/arm/probes/uprobes takes ARM only).
  const std::vector<std::string>& thumbFunctions() const { return thumbFunctions_; }

  // The BPF side keeps one entry per thread that called an allocator function (between
  // calls too, which is cheaper than an insert per call): the entries of threads that
  // no longer exist are removed here, so the maps never fill up. Cheap; call it now and
  // then (the recording loop does, once a second).
  void forgetExitedThreads();

  bool usesUprobeMulti() const { return multi_; }
  int ringBufferFd() const;
  // The map of recorded processes, shared with the kernel programs in combined mode.
  int targetsMapFd() const;
  // The unwinding maps (bpf/unwind_cfi.h), filled by unwind::UnwindMaps.
  int unwindTablesFd() const;
  int unwindMappingsFd() const;
  int unwindFilesFd() const;
  // Events the BPF side could not deliver since load, by kind (cumulative).
  std::array<uint64_t, HT_KIND_COUNT> lostCounts() const;
  // The BPF programs' ids (for tests and benchmarks that read their run counts).
  std::vector<uint32_t> programIds() const;

 private:
  struct SkeletonDeleter {
    void operator()(heaptrail_bpf* skel) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };
  // One attached link: a uprobe_multi link, or a libbpf per-probe link.
  struct Link {
    UprobeMultiLink multi;
    std::unique_ptr<bpf_link, LinkDeleter> single;
  };
  // Where the probes of one object go, decided once.
  struct PlacedObject {
    std::shared_ptr<const common::UniqueFd> file;  // kept open: what attachPath names
    std::filesystem::path attachPath;              // /proc/self/fd/N of `file`
    std::string displayPath;
    dev_t dev = 0;
    ino_t ino = 0;
    std::vector<uint64_t> entryOffsets, entryCookies, returnOffsets, returnCookies;
  };
  void place(const AllocatorObject& object, const std::vector<FunctionSpec>& specs, dev_t dev, ino_t ino,
             std::vector<schema::FunctionRecord>& placed);
  void attachPlaced(size_t index, pid_t pid);
  static void detachConcurrently(std::vector<Link>& links);
  // Detaching waits for the kernel (an RCU grace period per link): the links of exited
  // processes are closed by a thread of their own, so that the recording goes on.
  void retire(std::vector<Link> links);
  void reap();

  ProbeConfig config_;
  std::unique_ptr<heaptrail_bpf, SkeletonDeleter> skel_;
  bool multi_ = false;
  std::vector<PlacedObject> objects_;
  std::map<std::pair<dev_t, ino_t>, size_t> objectIndex_;  // file -> objects_ index
  std::set<std::tuple<dev_t, ino_t, uint64_t>> hooked_;    // file and offset of each function
  std::set<std::pair<pid_t, size_t>> attached_;            // (process, object) with links
  std::map<pid_t, std::vector<Link>> links_;
  std::vector<std::string> thumbFunctions_;
  std::optional<std::pair<dev_t, ino_t>> libc_;
  uint16_t nextFunctionId_ = 1;
  std::mutex reaperMutex_;
  std::condition_variable reaperWake_;
  std::vector<Link> retired_;
  bool stopping_ = false;
  std::thread reaper_;
};

// Sets libbpf's message callback: everything with --verbose, else warnings are kept
// and returned by lastLibbpfWarnings() to explain a failure.
void configureLibbpfLogging(bool verbose);
std::string lastLibbpfWarnings();

}  // namespace heaptrail::recorder
