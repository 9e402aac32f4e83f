#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace heaptrail::testing {

// An independent answer to "which function holds this file offset", from binutils
// (`readelf -lW` and `nm`), to check the recorder's stacks without trusting the
// analyzer's own ELF code.
class ElfOracle {
 public:
  explicit ElfOracle(const std::filesystem::path& binary);
  // Function containing the instruction at `fileOffset`, "" if none.
  std::string functionAt(uint64_t fileOffset) const;

 private:
  struct Load {
    uint64_t offset, vaddr, filesz;
  };
  struct Symbol {
    uint64_t address, size;
    std::string name;
  };
  std::vector<Load> loads_;
  std::vector<Symbol> symbols_;
};

}  // namespace heaptrail::testing
