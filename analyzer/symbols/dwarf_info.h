// The DWARF of one ELF file, read lazily and kept: compile units found by address; the first
// time an address falls into a unit, its line table and the address ranges of its functions;
// the first time into a function, the inlined calls inside it (libdwarf for the DIEs,
// line_table.cpp for .debug_line).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "analyzer/symbols/symbolized_frame.h"
#include "common/unique_fd.h"

namespace heaptrail::symbols {

class DwarfInfo {
 public:
  // nullptr with `error` set when the file has no readable DWARF.
  static std::unique_ptr<DwarfInfo> open(const std::filesystem::path& path, std::string& error);
  // The same for `fd`, opened by the caller (FileAccess); `path` names it in messages.
  static std::unique_ptr<DwarfInfo> open(common::UniqueFd fd, const std::filesystem::path& path, std::string& error);
  ~DwarfInfo();
  DwarfInfo(const DwarfInfo&) = delete;
  DwarfInfo& operator=(const DwarfInfo&) = delete;

  // The source frames at link-time address `vaddr`, innermost first, as `llvm-symbolizer -i`
  // gives them; the last one's function is empty when no DIE describes the code or when
  // `nameOutermost` is false (the caller then names it from a symbol table). Empty when no
  // compile unit covers vaddr.
  std::vector<SourceFrame> lookup(uint64_t vaddr, bool nameOutermost = true);

  std::size_t unitCount() const;
  std::size_t unitsLoaded() const;  // units whose line table and functions were read so far

  struct Impl;

 private:
  explicit DwarfInfo(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace heaptrail::symbols
