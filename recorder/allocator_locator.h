#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace heaptrail::recorder {

// An ELF object whose allocator functions a target may call, open: everything the
// recorder reads and probes is this very file, never a second lookup of a path the
// target could have changed meanwhile (recorder/mapped_file.h).
struct AllocatorObject {
  std::shared_ptr<const common::UniqueFd> file;
  std::string displayPath;  // as the target sees it
  // The program itself (its executable), not a library it loads: a library that defines
  // malloc and free is an allocator of its own (jemalloc, tcmalloc, mimalloc...).
  bool program = false;

  AllocatorObject(common::UniqueFd fd, std::string display)
      : file(std::make_shared<const common::UniqueFd>(std::move(fd))), displayPath(std::move(display)) {}
  int fd() const { return file->get(); }
  bool isOpen() const { return static_cast<bool>(*file); }
};

// What the target can call: its executable first (static programs, interposed or
// statically linked allocators), then the libraries it uses.
struct AllocatorObjects {
  std::vector<AllocatorObject> objects;
  std::optional<AllocatorObject> libc;  // the shared C library, if it uses one
};

// For a running process: its executable and every library in /proc/PID/maps, opened
// as mapped (mapped_file.h). Throws RecordError when the process cannot be inspected.
AllocatorObjects locateAllocatorsInProcess(pid_t pid);

// For a command about to be started: the program the kernel loads for it (the
// executable, or a script's interpreter: command_check.h), the libraries the dynamic
// loader preloads (`preload`: the LD_PRELOAD the command gets, then /etc/ld.so.preload)
// and the libraries they all need (DT_NEEDED, transitively, found where the loader
// looks), in the loader's lookup order.
AllocatorObjects locateAllocatorsForExecutable(const std::filesystem::path& program, const std::string& preload = {});

// The libraries a process started with LD_PRELOAD=`ldPreload` has preloaded, in the
// loader's order: those of the variable (separated by spaces or colons), then those of
// /etc/ld.so.preload.
std::vector<std::string> preloadedLibraries(const std::string& ldPreload);

// The object named with --obj; throws RecordError when it is missing or not a regular
// file (a FIFO is refused, not waited on).
AllocatorObjects namedAllocator(const std::filesystem::path& object);

bool isLibcName(const std::string& filename);
// Whether `filename` is that of a well-known allocator library (libjemalloc.so.2,
// libtcmalloc_minimal.so.4, libmimalloc.so.2, ...), for warnings about one mapped but
// not hooked in time.
bool isAllocatorLibraryName(const std::string& filename);

}  // namespace heaptrail::recorder
