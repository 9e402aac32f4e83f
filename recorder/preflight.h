#pragma once

namespace heaptrail::recorder {

// Checks, before anything is created, that this process may load BPF programs and
// that the kernel has what the recorder needs. Throws RecordError with what to do.
void checkPrivilegesAndKernel();

}  // namespace heaptrail::recorder
