// DWARF line table of one file (all CUs), flattened to sorted rows for binary search.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace heaptrail::symbols {

class LineTable {
 public:
  struct Hit {
    const std::string* file;
    unsigned line;
  };

  // Parses .debug_line of `path` with libdwarf. On failure returns nullopt and sets `error`.
  static std::optional<LineTable> load(const std::filesystem::path& path, std::string& error);

  std::optional<Hit> lookup(uint64_t vaddr) const;
  std::size_t rowCount() const { return rows_.size(); }

 private:
  static constexpr uint32_t kEndSequence = UINT32_MAX;
  struct Row {
    uint64_t addr;
    uint32_t file;  // index into files_, or kEndSequence for the first address after a sequence
    uint32_t line;
  };
  friend class LineTableBuilder;

  std::vector<Row> rows_;
  std::vector<std::string> files_;
};

}  // namespace heaptrail::symbols
