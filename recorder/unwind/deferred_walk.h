#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <vector>

#include "bpf/heaptrail_event.h"
#include "recorder/unwind/unwind_maps.h"

namespace heaptrail::recorder::unwind {

// Finishes a stack walk the BPF walker deferred (HT_STACK_DEFERRED: it reached a pc
// whose mapping it did not know yet) with the same steps (bpf/unwind_cfi.h), the
// mappings the recorder knows now and the copy of the stack the event carries. Appends
// to `frames` (at most `maxFrames` in all); returns false when the walk stopped before
// the outermost frame (incomplete). A pc still without a mapping ends it there.
bool finishDeferredWalk(const UnwindMaps& maps, pid_t pid, const ht_resume& resume, std::span<const uint8_t> stack,
                        uint32_t maxFrames, std::vector<uint64_t>& frames);

}  // namespace heaptrail::recorder::unwind
