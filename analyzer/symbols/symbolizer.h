// Public API of the heaptrail symbolizer: (module, file offset) -> the functions at that
// address (inlined calls included) with file:line, as `llvm-symbolizer -i` gives them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "analyzer/symbols/symbolized_frame.h"

namespace heaptrail::symbols {

struct ModuleRef {
  std::string path;     // path of the mapped file as recorded on the device
  std::string buildId;  // raw GNU build-id bytes, empty if unknown
};

struct SymbolizerOptions {
  std::filesystem::path sysroot;                  // prefixed to recorded module paths when non-empty
  std::vector<std::filesystem::path> debugDirs;   // searched before the system debug dir
  bool systemDebugDir = true;                     // also search /usr/lib/debug (and <sysroot>/usr/lib/debug)
  // Files not found locally are asked by build-id from the servers in $DEBUGINFOD_URLS
  // (when set): binaries, then separate debug files.
  bool debuginfod = true;
};

struct SymbolizerStats {
  std::size_t modulesIndexed = 0;  // distinct (path, build-id) keys indexed
  std::size_t elfOpens = 0;        // ELF files opened (binaries, candidates and debug files)
  std::size_t dwarfLoads = 0;      // files whose DWARF was opened
  std::size_t dwarfUnits = 0;      // compile units in the opened DWARF
  std::size_t dwarfUnitsRead = 0;  // of those, units whose line table and functions were read (on first use)
  std::size_t debuginfodFiles = 0; // files fetched from (or found in the cache of) debuginfod servers
};

// Not thread-safe: use one Symbolizer per thread or guard it externally.
class Symbolizer {
 public:
  explicit Symbolizer(SymbolizerOptions options);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;
  Symbolizer(Symbolizer&&) noexcept;
  Symbolizer& operator=(Symbolizer&&) noexcept;

  // fileOffset = offset into the ELF file of the instruction
  // (mapping file offset + (addr - mapping start)); return addresses already adjusted by the caller.
  SymbolizedFrame resolve(const ModuleRef& module, uint64_t fileOffset);

  // Counters, mainly so tests can verify the per-module cache.
  SymbolizerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace heaptrail::symbols
