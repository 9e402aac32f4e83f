// Sorted function symbols of one ELF symbol section (.symtab or .dynsym).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace heaptrail::symbols {

class ElfFile;

std::string demangle(std::string_view mangled);

class SymbolTable {
 public:
  enum class Source { Symtab, Dynsym };
  enum class Match { Containing, NearestPreceding };

  SymbolTable() = default;
  static SymbolTable build(const ElfFile& file, Source source);

  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  // Demangled name of the function at vaddr, nullptr if none. NearestPreceding also accepts the
  // closest symbol below vaddr in the same section when no sized symbol contains it.
  // `sourceFile`, if given, receives the STT_FILE name a local symbol follows ("" if none).
  const std::string* lookup(uint64_t vaddr, Match match, std::string_view* sourceFile = nullptr) const;

 private:
  struct Entry {
    uint64_t addr;
    uint64_t size;
    uint64_t sectionEnd;
    uint32_t nameOffset;
    uint32_t nameLength;
    uint32_t fileOffset;  // in names_: the STT_FILE symbol before a local symbol
    uint32_t fileLength;
  };
  const std::string& nameOf(std::size_t index) const;
  const std::string* found(std::size_t index, std::string_view* sourceFile) const;

  std::vector<Entry> entries_;
  std::string names_;  // raw names and STT_FILE names, concatenated
  mutable std::vector<std::string> demangled_;
  mutable std::vector<bool> demangledReady_;
};

}  // namespace heaptrail::symbols
