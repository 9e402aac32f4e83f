#pragma once

namespace heaptrail::recorder {

// Checks, before anything is created, that this process may load BPF programs and
// that the kernel has what the recorder needs. Throws RecordError with what to do.
// The kernel's BTF is not needed (the allocator probes read user registers only, forks
// are followed with ptrace), so kernels built without it (e.g. Debian's armhf) record.
void checkPrivilegesAndKernel();

}  // namespace heaptrail::recorder
