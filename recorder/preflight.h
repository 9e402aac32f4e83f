#pragma once

namespace heaptrail::recorder {

// Checks, before anything is created, that this process may load BPF programs and
// that the kernel has what the recorder needs. Throws RecordError with what to do.
// The kernel's BTF is needed only to follow forks (the allocator probes read user
// registers only), so that kernels built without it (e.g. Debian's armhf) still record.
void checkPrivilegesAndKernel(bool followForks);

}  // namespace heaptrail::recorder
