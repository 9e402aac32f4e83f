// Kernel mode's part of a recording (--kernel): the tracepoint programs, the kallsyms
// snapshot for the header, and turning each kernel event into the trace's records
// (event, stack, thread name). Used alone (recorder/kernel_session.cpp) or beside the
// user-space probes of -p / -- cmd (recorder/recording_session.cpp), sharing their stack
// table and chunk.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "bpf/heaptrail_event.h"
#include "recorder/kernel_probes.h"
#include "recorder/kernel_snapshot.h"
#include "recorder/options.h"
#include "recorder/recording_session.h"
#include "recorder/stack_table.h"
#include "schema/chunk_builder.h"

struct ring_buffer;
struct ht_kernel_event;

namespace heaptrail::recorder {

class KernelRecording {
 public:
  // `targetsMapFd`: the user probes' target map (combined mode: those processes' kernel
  // allocations also get their user stack), -1 for kernel mode alone. Throws RecordError.
  KernelRecording(const RecordOptions& options, StackTable& stacks, schema::ChunkBuilder& chunk,
                  RecordSummary& summary, int targetsMapFd);
  ~KernelRecording();
  KernelRecording(const KernelRecording&) = delete;
  KernelRecording& operator=(const KernelRecording&) = delete;

  // Reads the kernel ring buffer through `ring` from now on.
  void addTo(ring_buffer* ring);
  // A ring buffer reader of its own (kernel mode alone).
  ring_buffer* makeRing();

  // Events before this time (CLOCK_MONOTONIC) are dropped: the trace starts there.
  void setStart(uint64_t startNs) { startNs_ = startNs; }
  // Fills Header.kernel; the kallsyms snapshot is dropped afterwards (it is only needed once).
  void writeHeader(schema::KernelInfo::Builder out);
  std::array<uint64_t, HT_KIND_COUNT> lostCounts() const { return probes_->lostCounts(); }

 private:
  static int onRingEvent(void* self, void* data, size_t size);
  void addEvent(const ht_kernel_event* event, size_t size);

  const RecordOptions& options_;
  StackTable& stacks_;
  schema::ChunkBuilder& chunk_;
  RecordSummary& summary_;
  KernelTypes types_;
  KernelSnapshot snapshot_;
  std::unique_ptr<KernelProbes> probes_;
  bool userStacks_ = false;
  uint64_t startNs_ = 0;
  // The last name seen per (pid, tid): a thread name record is written when it changes.
  std::unordered_map<uint64_t, std::string> names_;
};

}  // namespace heaptrail::recorder
