#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace heaptrail::recorder {

// What the recorder needs to know about an ELF file: enough to find the allocator and
// to identify the file later. Deliberately small: no symbolization on the device.
struct ElfInfo {
  std::string buildId;               // GNU build-id bytes, empty if none
  std::string interpreter;           // PT_INTERP, empty for static executables
  std::vector<std::string> needed;   // DT_NEEDED
  std::vector<std::string> runpath;  // DT_RUNPATH (or DT_RPATH) directories, $ORIGIN unexpanded
};

// Where functions of an ELF file live, for attaching uprobes.
struct FunctionLocation {
  uint64_t vaddr = 0;       // st_value
  uint64_t fileOffset = 0;  // what a uprobe is attached at
  bool thumb = false;       // 32-bit arm Thumb code (st_value bit 0): no uprobe can go there
  uint64_t size = 0;        // st_size
};
struct ExecutableSegment {
  uint64_t vaddr = 0;
  uint64_t fileOffset = 0;
  uint64_t fileSize = 0;
};
struct FunctionIndex {
  std::map<std::string, FunctionLocation> functions;  // the names asked for that exist
  uint64_t textStart = 0;  // virtual address range of the executable segment(s)
  uint64_t textEnd = 0;
  std::vector<ExecutableSegment> executableSegments;
};
// Looks up defined, global function symbols by name (.dynsym, then .symtab) in the open
// file `fd`.
std::optional<FunctionIndex> indexFunctions(int fd, const std::vector<std::string>& names);
// The same for a file the caller chose (opened without blocking, regular files only).
std::optional<FunctionIndex> indexFunctions(const std::filesystem::path& path, const std::vector<std::string>& names);

// nullopt when the open file `fd` is not ELF.
std::optional<ElfInfo> readElfInfo(int fd);

}  // namespace heaptrail::recorder
