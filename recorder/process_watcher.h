#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "common/unique_fd.h"
#include "recorder/mapped_file.h"
#include "schema/records.h"

struct perf_buffer;

namespace heaptrail::recorder {

// Follows what the kernel tells perf about processes: executable mappings (exec,
// dlopen; with the file's path and build-id, from the kernel, so even a library that
// is unloaded a millisecond later is captured), execs, forks and exits. One dummy perf
// event per CPU, system wide (read through libbpf's perf_buffer), filtered to the target
// processes here.
class ProcessWatcher {
 public:
  // `reportExits`: EXIT records of targets are handed over (false when --follow-forks
  // learns forks and exits from ptrace, exactly; see fork_follower.h).
  explicit ProcessWatcher(bool reportExits);  // throws RecordError
  ~ProcessWatcher();
  ProcessWatcher(const ProcessWatcher&) = delete;
  ProcessWatcher& operator=(const ProcessWatcher&) = delete;

  void addTarget(pid_t pid) { targets_.insert(static_cast<uint32_t>(pid)); }
  void removeTarget(pid_t pid) { targets_.erase(static_cast<uint32_t>(pid)); }
  const std::set<uint32_t>& targets() const { return targets_; }

  struct Sink {
    std::function<void(schema::MappingRecord)> mapping;
    std::function<void(schema::ProcessRecord)> process;
  };
  // Hands every record of a target received so far to `sink`.
  void drain(const Sink& sink);
  // Readable when records arrived (each one wakes it): a new library's unwind table is
  // best loaded before the library's first allocation.
  int fd() const;
  // Records the kernel dropped because a perf buffer was full.
  uint64_t lostRecords() const { return lostRecords_; }

 private:
  struct BufferDeleter {
    void operator()(perf_buffer* buffer) const;
  };
  void handle(const uint8_t* record, size_t size, const Sink& sink);

  bool reportExits_;
  common::UniqueFd cpuMap_;  // the PERF_EVENT_ARRAY perf_buffer keeps its per-CPU events in
  std::unique_ptr<perf_buffer, BufferDeleter> buffer_;
  // Records of one drain from all CPUs, put in time order before they are handled:
  // a child's first mapping must not be seen before the fork that made it a target.
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> pending_;
  std::set<uint32_t> targets_;
  uint64_t lostRecords_ = 0;
};

// Executable mappings of a running process, as the first entries of its map history.
std::vector<schema::MappingRecord> snapshotMappings(pid_t pid, uint64_t timeNs);
// The build-id of a file a process mapped, read from the mapped file itself
// (recorder/mapped_file.h): it works for files in other mount namespaces and deleted
// files still mapped, and a path the process replaced since cannot steer it.
std::string mappedFileBuildId(const MappedFile& mapping);

}  // namespace heaptrail::recorder
