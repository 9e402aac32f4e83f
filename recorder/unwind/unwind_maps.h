#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bpf/unwind_table.h"
#include "common/unique_fd.h"
#include "recorder/unwind/stack_mode.h"
#include "recorder/unwind/table_cache.h"

namespace heaptrail::recorder::unwind {


// What the BPF walker knows about the targets' executable mappings: the unwind table of
// each mapped file (loaded once per file into the table array) and, per process, which
// address ranges use which table (the LPM trie of bpf/unwind_table.h). Also the
// recorder's own copy of those ranges, against which every captured frame is checked.
class UnwindMaps {
 public:
  // `tablesFd`, `mappingsFd`, `filesFd`: the BPF maps unwind_tables, unwind_mappings
  // and unwind_files.
  UnwindMaps(StackMode mode, int tablesFd, int mappingsFd, int filesFd);
  ~UnwindMaps();
  UnwindMaps(const UnwindMaps&) = delete;
  UnwindMaps& operator=(const UnwindMaps&) = delete;

  // An executable mapping of process `pid` (a tgid) of the file open at `fd` (-1 when it
  // cannot be opened: its frames are still valid return addresses, but the walk stops
  // there). Replaces what overlapped it. Returns the table used (nullptr: none).
  // When the file cannot be opened (the process is gone already), a table compiled
  // before for its `buildId` is used.
  std::shared_ptr<const UnwindTable> addMapping(pid_t pid, uint64_t start, uint64_t end, uint64_t fileOffset,
                                                int fd, const std::string& buildId);
  // Compiles and loads the table of a file the target is about to map (its executable
  // and libraries, before it starts): the BPF walker finds it by build-id as soon as the
  // file is mapped, before its mapping record is read (bpf/unwind_cfi.h,
  // resolve_new_mapping); and a short-lived process may be gone before then.
  void prepare(int fd) {
    if (mode_ != StackMode::Fp) publish(cache_.get(fd));
  }
  // Groups table loads: each table put in the table array costs the kernel an RCU grace
  // period (a map-in-map update waits for running programs), ~17 ms here, so the tables
  // loaded while a Batch lives are put in with one batch update when the last Batch goes
  // (attaching to a process with 100 libraries: 1.7 s of waits before). What refers to
  // them (mappings, build-ids) becomes visible to the walker after them.
  class Batch {
   public:
    explicit Batch(UnwindMaps& maps) : maps_(maps) { ++maps_.batchDepth_; }
    ~Batch() {
      if (--maps_.batchDepth_ == 0) maps_.commit();
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    UnwindMaps& maps_;
  };

  // A forked child starts with its parent's mappings (the kernel reports none for it).
  void copyProcess(pid_t parent, pid_t child);
  void removeProcess(pid_t pid);
  // What the walker knows of the mapping of `address` in `pid` (nullopt: none).
  struct Found {
    ht_unwind_mapping value;
    const UnwindTable* table = nullptr;  // HT_MAPPING_TABLE
  };
  std::optional<Found> find(pid_t pid, uint64_t address) const;

  StackMode mode() const { return mode_; }
  // Tables loaded into BPF maps, and the bytes of their rows.
  size_t loadedTables() const { return loaded_.size(); }
  uint64_t loadedTableBytes() const { return loadedBytes_; }
  size_t mappingEntries() const { return entries_; }
  // Approximate kernel memory of the maps: rows, plus the LPM trie's nodes.
  uint64_t kernelBytes() const;

 private:
  struct Range {
    uint64_t end = 0;
    ht_unwind_mapping value{};
    std::shared_ptr<const UnwindTable> table;  // HT_MAPPING_TABLE
    std::vector<ht_mapping_key> keys;  // the prefixes in the LPM trie
  };
  void insert(pid_t pid, uint64_t start, Range range);
  void erase(pid_t pid, std::map<uint64_t, Range>::iterator it);
  // The index of `table` in the table array, loading it on first use; -1 when full.
  int tableIndex(const std::shared_ptr<const UnwindTable>& table);
  // Makes `table`'s file known to the BPF walker by its build-id (unwind_files).
  void publish(const std::shared_ptr<const UnwindTable>& table);
  // The table at `index` is loaded but not yet in the table array (Batch).
  bool pending(uint32_t index) const;
  void writePrefix(const ht_mapping_key& key, const ht_unwind_mapping& value);
  // Puts the pending tables in the table array, then what refers to them.
  void commit();

  StackMode mode_;
  int tablesFd_;
  int mappingsFd_;
  int filesFd_;
  std::set<std::string> published_;  // build-ids in unwind_files
  int batchDepth_ = 0;
  struct PendingTable {
    uint32_t index;
    common::UniqueFd rows;
  };
  std::vector<PendingTable> pendingTables_;
  std::vector<std::pair<ht_build_id_key, ht_unwind_file>> pendingFiles_;
  std::vector<std::pair<ht_mapping_key, ht_unwind_mapping>> pendingPrefixes_;
  TableCache cache_;
  std::map<const UnwindTable*, int> loaded_;
  std::vector<std::shared_ptr<const UnwindTable>> keepAlive_;
  uint64_t loadedBytes_ = 0;
  size_t entries_ = 0;
  std::map<pid_t, std::map<uint64_t, Range>> processes_;  // pid -> start -> range
};

}  // namespace heaptrail::recorder::unwind
