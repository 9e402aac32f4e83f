#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace heaptrail::recorder {

// The ELF object whose malloc/free a target calls, and the path to attach uprobes to.
struct AllocatorObject {
  std::filesystem::path attachPath;  // usable from the recorder (may go through /proc/PID/root)
  std::string displayPath;           // as the target sees it
  bool isLibrary = true;             // false when it is the program's own executable
};

// For a running process: its executable when that defines malloc (static or
// interposing allocator), otherwise its libc (glibc or musl) from /proc/PID/maps.
// Throws RecordError when neither is found.
AllocatorObject locateAllocatorInProcess(pid_t pid);

// For a command about to be started: the same decision made from the executable's
// ELF headers (static, PT_INTERP, DT_NEEDED). Scripts and other non-ELF files use the
// libc the recorder itself runs on.
AllocatorObject locateAllocatorForExecutable(const std::filesystem::path& executable);

}  // namespace heaptrail::recorder
