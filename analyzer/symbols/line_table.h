// The DWARF line table of one compile unit (versions 2 to 5), parsed from .debug_line,
// with its file table joined into paths the way DWARF 5 (and llvm-symbolizer) defines.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace heaptrail::symbols {

struct LineSections {
  std::span<const uint8_t> line;     // .debug_line
  std::span<const uint8_t> lineStr;  // .debug_line_str (DWARF 5 DW_FORM_line_strp)
  std::span<const uint8_t> str;      // .debug_str (DW_FORM_strp)
};

class LineTable {
 public:
  struct Hit {
    uint64_t file;  // DWARF file index, for fileName()
    uint32_t line;  // 0 when the compiler marked the code as belonging to no line
  };

  // Parses the line program at `offset` in .debug_line. `compDir` is the unit's
  // DW_AT_comp_dir. On malformed input returns nullopt and sets `error`.
  static std::optional<LineTable> parse(const LineSections& sections, uint64_t offset, std::string_view compDir,
                                        std::string& error);

  // The row covering vaddr: the last row at or below it in the sequence that contains it.
  std::optional<Hit> lookup(uint64_t vaddr) const;

  // Path of DWARF file `index` (DWARF 5: 0 is the primary source file; before: 1-based),
  // nullptr if there is no such entry.
  const std::string* fileName(uint64_t index) const;

  // [low, high) of every sequence, for units whose DIE gives no address range.
  std::vector<std::pair<uint64_t, uint64_t>> sequenceRanges() const;


 private:
  static constexpr uint32_t kEndSequence = UINT32_MAX;
  struct Row {
    uint64_t addr;
    uint32_t file;  // DWARF file index, or kEndSequence for the first address after a sequence
    uint32_t line;
  };
  friend class LineProgram;
  void sortRows();

  std::vector<Row> rows_;
  std::vector<std::string> files_;  // by DWARF index (index 0 unused before DWARF 5)
  std::vector<bool> fileKnown_;
};

// How DWARF 5 and llvm-symbolizer join a file-table entry into a path: an absolute name
// stands alone; otherwise include directory then name, and before both the compilation
// directory unless the directory is absolute or (DWARF 5) is directory 0, which already is
// the compilation directory. No normalization ("./a/../b" stays as written).
std::string joinSourcePath(std::string_view compDir, std::string_view includeDir, bool includeDirIsCompDir,
                           std::string_view name);

}  // namespace heaptrail::symbols
