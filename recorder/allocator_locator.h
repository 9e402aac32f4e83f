#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace heaptrail::recorder {

// An ELF object whose allocator functions a target may call.
struct AllocatorObject {
  std::filesystem::path attachPath;  // usable from the recorder (may go through /proc/PID/root)
  std::string displayPath;           // as the target sees it
};

// What the target can call: its executable first (static programs, interposed or
// statically linked allocators), then the libraries it uses.
struct AllocatorObjects {
  std::vector<AllocatorObject> objects;
  std::optional<AllocatorObject> libc;  // the shared C library, if it uses one
};

// For a running process: its executable and every library in /proc/PID/maps.
// Throws RecordError when the process cannot be inspected.
AllocatorObjects locateAllocatorsInProcess(pid_t pid);

// For a command about to be started: its executable (or a script's interpreter) and the
// libraries it needs (DT_NEEDED, transitively, found where the loader looks).
AllocatorObjects locateAllocatorsForExecutable(const std::filesystem::path& executable);

// The object named with --obj; throws RecordError when it does not exist.
AllocatorObjects namedAllocator(const std::filesystem::path& object);

bool isLibcName(const std::string& filename);

}  // namespace heaptrail::recorder
