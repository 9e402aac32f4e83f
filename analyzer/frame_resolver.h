// Turns (module, file offset) into function/file/line. An interface so the analyzer
// builds and is tested without the DWARF symbolizer (-DHT_NO_SYMBOLS=ON).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace heaptrail::analyzer {

struct FrameSymbol {
  bool resolved = false;
  std::string function;  // empty if unknown
  std::string file;      // empty if unknown
  unsigned line = 0;     // 0 if unknown
  std::string reason;    // why not, when !resolved
};

class FrameResolver {
 public:
  virtual ~FrameResolver() = default;
  // `path`/`buildId` (raw bytes) as recorded; `fileOffset` of the instruction to look up.
  virtual FrameSymbol resolve(const std::string& path, const std::string& buildId, uint64_t fileOffset) = 0;
};

struct SymbolOptions {
  std::filesystem::path sysroot;
  std::vector<std::filesystem::path> debugDirs;
};

// The DWARF/ELF symbolizer, or nullptr when this build has none.
std::unique_ptr<FrameResolver> makeSymbolizer(const SymbolOptions& options);

}  // namespace heaptrail::analyzer
