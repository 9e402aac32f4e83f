#include "recorder/kernel_recording.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "bpf/heaptrail_kernel_event.h"
#include "recorder/record_error.h"
#include "schema/event_kinds.h"

namespace heaptrail::recorder {

KernelRecording::KernelRecording(const RecordOptions& options, StackTable& stacks, schema::ChunkBuilder& chunk,
                                 RecordSummary& summary, int targetsMapFd)
    : options_(options), stacks_(stacks), chunk_(chunk), summary_(summary) {
  types_ = readKernelTypes();
  // Before the programs run, so that every address they report can be looked up.
  snapshot_ = takeKernelSnapshot();
  userStacks_ = targetsMapFd >= 0;
  probes_ = std::make_unique<KernelProbes>(
      KernelProbeConfig{options.kernelEvents, options.kernelStackDepth, userStacks_ ? options.stackDepth : 0,
                        options.kernelRingBufferBytes, targetsMapFd},
      types_);
}

KernelRecording::~KernelRecording() = default;

int KernelRecording::onRingEvent(void* self, void* data, size_t size) {
  static_cast<KernelRecording*>(self)->addEvent(static_cast<const ht_kernel_event*>(data), size);
  return 0;
}

void KernelRecording::addTo(ring_buffer* ring) {
  if (ring_buffer__add(ring, probes_->ringBufferFd(), &KernelRecording::onRingEvent, this) != 0)
    throw RecordError(std::string("cannot read the kernel BPF ring buffer: ") + std::strerror(errno));
}

ring_buffer* KernelRecording::makeRing() {
  ring_buffer* ring = ring_buffer__new(probes_->ringBufferFd(), &KernelRecording::onRingEvent, this, nullptr);
  if (!ring) throw RecordError(std::string("cannot read the kernel BPF ring buffer: ") + std::strerror(errno));
  return ring;
}

void KernelRecording::writeHeader(schema::KernelInfo::Builder out) {
  writeKernelSnapshot(out, snapshot_);
  const auto names = kernelEventGroupNames(options_.kernelEvents);
  auto events = out.initEvents(static_cast<unsigned>(names.size()));
  for (unsigned i = 0; i < names.size(); ++i) events.set(i, names[i]);
  out.setPageStructBytes(types_.pageStructBytes);
  out.setKernelStackDepth(options_.kernelStackDepth);
  out.setUserStacks(userStacks_);
  snapshot_ = KernelSnapshot{};
}

void KernelRecording::addEvent(const ht_kernel_event* event, size_t size) {
  if (size < HT_KERNEL_EVENT_HEADER_SIZE || event->kind >= HT_KIND_COUNT || event->ts_ns < startNs_) return;
  const size_t frames = std::min<size_t>(size_t{event->kernel_frames} + event->user_frames,
                                         (size - HT_KERNEL_EVENT_HEADER_SIZE) / sizeof(uint64_t));
  uint32_t stackId = 0;
  if (frames > 0) {
    const std::string_view bytes(reinterpret_cast<const char*>(event->stack), frames * sizeof(uint64_t));
    const auto lookup = stacks_.intern(bytes);
    stackId = lookup.id;
    if (lookup.isNew) chunk_.addStack(stackId, std::span(reinterpret_cast<const uint64_t*>(event->stack), frames));
  }
  const auto kind = static_cast<schema::EventKind>(event->kind);
  if (event->comm[0] != '\0') {
    const std::string name(event->comm, strnlen(event->comm, sizeof event->comm));
    auto& known = names_[(uint64_t{event->pid} << 32) | event->tid];
    if (known != name) {
      known = name;
      chunk_.addThreadName({event->ts_ns, event->pid, event->tid, name});
    }
  }
  chunk_.addEvent({kind, event->ts_ns, event->pid, event->tid, event->address, event->size, stackId, 0});
  ++summary_.events;
  if (schema::isAllocation(kind))
    ++summary_.allocations;
  else
    ++summary_.frees;
}

}  // namespace heaptrail::recorder
