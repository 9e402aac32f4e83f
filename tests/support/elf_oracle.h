#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace heaptrail::testing {

// Independent answers about an ELF file from binutils (`readelf -hlSW` and `nm`), to check
// the recorder's stacks and the analyzer's symbolizer without trusting heaptrail's own
// ELF code.
class ElfOracle {
 public:
  struct Symbol {
    uint64_t address, size;
    std::string name;  // as nm prints it: mangled
  };
  struct Section {
    std::string name;
    uint64_t offset, size;
  };

  explicit ElfOracle(const std::filesystem::path& binary);

  // Function containing the instruction at `fileOffset`, "" if none.
  std::string functionAt(uint64_t fileOffset) const;
  // File offset of link-time address `vaddr` through the PT_LOAD headers.
  std::optional<uint64_t> fileOffset(uint64_t vaddr) const;
  // File offset of function or code label `name`.
  std::optional<uint64_t> symbolOffset(const std::string& name) const;
  // Defined functions with a size (nm types T, t, W, w).
  const std::vector<Symbol>& functions() const { return symbols_; }
  const std::vector<Section>& sections() const { return sections_; }
  // "EXEC", "DYN", ... as readelf -h names e_type.
  const std::string& type() const { return type_; }
  bool executableSegmentHasVaddrNotEqualOffset() const;

 private:
  struct Load {
    uint64_t offset, vaddr, filesz;
    bool executable;
  };
  std::vector<Load> loads_;
  std::vector<Symbol> symbols_;
  std::vector<Symbol> labels_;  // code symbols without a size
  std::vector<Section> sections_;
  std::string type_;
};

}  // namespace heaptrail::testing
