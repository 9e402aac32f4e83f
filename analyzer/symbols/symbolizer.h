// Public API of the heaptrail symbolizer: (module, file offset) -> function file:line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace heaptrail::symbols {

struct ModuleRef {
  std::string path;     // path of the mapped file as recorded on the device
  std::string buildId;  // raw GNU build-id bytes, empty if unknown
};

enum class FrameStatus { Resolved, FileMissing, BuildIdMismatch, NotElf, NoSymbols, OutsideImage };

std::string_view toString(FrameStatus status);

struct ResolvedFrame {
  FrameStatus status = FrameStatus::NoSymbols;
  std::string function;  // demangled name, empty if unknown
  std::string file;      // source file (joined with DW_AT_comp_dir when relative), empty if unknown
  unsigned line = 0;     // 0 if unknown
  std::string usedFile;  // file on disk that gave the answer (binary or separate debug file)
  std::string reason;    // human readable explanation when status != Resolved
};

struct SymbolizerOptions {
  std::filesystem::path sysroot;                  // prefixed to recorded module paths when non-empty
  std::vector<std::filesystem::path> debugDirs;   // searched before the system debug dir
  bool systemDebugDir = true;                     // also search /usr/lib/debug (and <sysroot>/usr/lib/debug)
};

struct SymbolizerStats {
  std::size_t modulesIndexed = 0;  // distinct (path, build-id) keys indexed
  std::size_t elfOpens = 0;        // ELF files opened (binaries, candidates and debug files)
  std::size_t dwarfLoads = 0;      // line tables parsed
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
  ResolvedFrame resolve(const ModuleRef& module, uint64_t fileOffset);

  // Counters, mainly so tests can verify the per-module cache.
  const SymbolizerStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GNU build-id note bytes of an ELF file, "" if none or unreadable. Never throws.
std::string readBuildId(const std::filesystem::path& path) noexcept;

// Lower-case hex of raw build-id bytes, and the inverse ("" on malformed input).
std::string buildIdToHex(std::string_view raw);
std::string buildIdFromHex(std::string_view hex);

}  // namespace heaptrail::symbols
