#include "analyzer/symbols/line_table.h"

#include <dwarf.h>

#include <algorithm>

#include "analyzer/symbols/byte_reader.h"

namespace heaptrail::symbols {

namespace {

bool isAbsolute(std::string_view path) { return !path.empty() && path.front() == '/'; }

// llvm::sys::path::append: one separator between components, empty components skipped.
void appendComponent(std::string& path, std::string_view component) {
  if (component.empty()) return;
  if (!path.empty() && path.back() == '/') {
    const auto first = component.find_first_not_of('/');
    if (first != std::string_view::npos) path.append(component.substr(first));
    return;
  }
  if (!path.empty() && component.front() != '/') path.push_back('/');
  path.append(component);
}

bool isTombstone(uint64_t addr) {
  // Address 0 and -1/-2 are what linkers write for discarded (gc'ed / COMDAT) functions.
  return addr == 0 || addr >= UINT64_MAX - 1;
}

struct FormValue {
  uint64_t number = 0;
  std::string_view text;
};

// One attribute value of a DWARF 5 directory or file entry.
bool readForm(ByteReader& r, uint64_t form, bool dwarf64, const LineSections& sections, FormValue& out) {
  const std::size_t offsetSize = dwarf64 ? 8 : 4;
  switch (form) {
    case DW_FORM_string: out.text = r.cstring(); return true;
    case DW_FORM_line_strp: out.text = stringAt(sections.lineStr, r.fixed(offsetSize)); return true;
    case DW_FORM_strp: out.text = stringAt(sections.str, r.fixed(offsetSize)); return true;
    case DW_FORM_strp_sup:
    case DW_FORM_GNU_strp_alt: r.fixed(offsetSize); return true;  // in another file: left unknown
    case DW_FORM_strx: r.uleb(); return true;                      // needs the unit's string offsets base
    case DW_FORM_strx1: r.u8(); return true;
    case DW_FORM_strx2: r.u16(); return true;
    case DW_FORM_strx3: r.fixed(3); return true;
    case DW_FORM_strx4: r.u32(); return true;
    case DW_FORM_udata: out.number = r.uleb(); return true;
    case DW_FORM_sdata: out.number = static_cast<uint64_t>(r.sleb()); return true;
    case DW_FORM_data1:
    case DW_FORM_flag: out.number = r.u8(); return true;
    case DW_FORM_data2: out.number = r.u16(); return true;
    case DW_FORM_data4: out.number = r.u32(); return true;
    case DW_FORM_data8: out.number = r.u64(); return true;
    case DW_FORM_data16: r.skip(16); return true;
    case DW_FORM_block: r.skip(r.uleb()); return true;
    case DW_FORM_block1: r.skip(r.u8()); return true;
    case DW_FORM_block2: r.skip(r.u16()); return true;
    case DW_FORM_block4: r.skip(r.u32()); return true;
    default: return false;
  }
}

struct FileEntry {
  std::string_view name;
  uint64_t dir = 0;
};

struct EntryFormat {
  uint64_t content;
  uint64_t form;
};

// A DWARF 5 entry-format description followed by its entries.
template <typename OnEntry>
bool readV5Entries(ByteReader& r, bool dwarf64, const LineSections& sections, OnEntry onEntry) {
  const uint8_t formatCount = r.u8();
  std::vector<EntryFormat> formats;
  for (uint8_t i = 0; i < formatCount && !r.failed(); ++i) {
    const uint64_t content = r.uleb();
    formats.push_back({content, r.uleb()});
  }
  const uint64_t count = r.uleb();
  for (uint64_t i = 0; i < count && !r.failed(); ++i) {
    FileEntry entry;
    for (const auto& f : formats) {
      FormValue v;
      if (!readForm(r, f.form, dwarf64, sections, v)) return false;
      if (f.content == DW_LNCT_path) entry.name = v.text;
      if (f.content == DW_LNCT_directory_index) entry.dir = v.number;
    }
    onEntry(entry);
  }
  return !r.failed();
}

}  // namespace

std::string joinSourcePath(std::string_view compDir, std::string_view includeDir, bool includeDirIsCompDir,
                           std::string_view name) {
  if (isAbsolute(name)) return std::string(name);
  std::string path;
  if (!includeDirIsCompDir && !isAbsolute(includeDir)) appendComponent(path, compDir);
  appendComponent(path, includeDir);
  appendComponent(path, name);
  return path;
}

// The line number program's state machine (DWARF 5 section 6.2.2).
class LineProgram {
 public:
  // is_stmt is not tracked: like llvm, lookups use every row, statement start or not.
  LineProgram(LineTable& table, uint8_t minInstLength, uint8_t maxOps, int8_t lineBase, uint8_t lineRange,
              uint8_t opcodeBase, std::vector<uint8_t> opcodeLengths)
      : table_(table),
        minInstLength_(minInstLength),
        maxOps_(maxOps == 0 ? 1 : maxOps),
        lineBase_(lineBase),
        lineRange_(lineRange),
        opcodeBase_(opcodeBase),
        opcodeLengths_(std::move(opcodeLengths)) {
    reset();
  }

  // Returns false if the program is malformed; rows of complete sequences read so far stay.
  bool run(ByteReader& r, std::vector<std::pair<std::string_view, uint64_t>>& definedFiles) {
    while (!r.atEnd()) {
      const uint8_t opcode = r.u8();
      if (opcode >= opcodeBase_) {
        const uint8_t adjusted = opcode - opcodeBase_;
        advance(adjusted / lineRange_);
        line_ += lineBase_ + static_cast<int64_t>(adjusted % lineRange_);
        emit();
        continue;
      }
      switch (opcode) {
        case 0: {  // extended
          const uint64_t length = r.uleb();
          ByteReader op = r.sub(length);
          if (length == 0 || r.failed()) return !r.failed();
          const uint8_t sub = op.u8();
          if (sub == DW_LNE_end_sequence) {
            endSequence();
          } else if (sub == DW_LNE_set_address) {
            const std::size_t size = op.remaining();
            if (size == 0 || size > 8) return false;
            address_ = op.fixed(size);
            opIndex_ = 0;
          } else if (sub == DW_LNE_define_file) {
            const std::string_view name = op.cstring();
            const uint64_t dir = op.uleb();
            definedFiles.emplace_back(name, dir);
          }
          // DW_LNE_set_discriminator and vendor opcodes: nothing we keep.
          break;
        }
        case DW_LNS_copy: emit(); break;
        case DW_LNS_advance_pc: advance(r.uleb()); break;
        case DW_LNS_advance_line: line_ += r.sleb(); break;
        case DW_LNS_set_file: file_ = r.uleb(); break;
        case DW_LNS_const_add_pc: advance((255 - opcodeBase_) / lineRange_); break;
        case DW_LNS_fixed_advance_pc:
          address_ += r.u16();
          opIndex_ = 0;
          break;
        case DW_LNS_set_column:
        case DW_LNS_set_isa: r.uleb(); break;
        case DW_LNS_negate_stmt:
        case DW_LNS_set_basic_block:
        case DW_LNS_set_prologue_end:
        case DW_LNS_set_epilogue_begin: break;
        default:
          // An opcode this reader does not know: skip its operands as the header describes.
          if (opcode - 1u < opcodeLengths_.size())
            for (uint8_t i = 0; i < opcodeLengths_[opcode - 1]; ++i) r.uleb();
          break;
      }
      if (r.failed()) return false;
    }
    return true;  // a sequence without end_sequence has no known extent: it is dropped
  }

 private:
  void reset() {
    address_ = 0;
    opIndex_ = 0;
    file_ = 1;
    line_ = 1;
    sequence_.clear();
  }
  void advance(uint64_t operationAdvance) {
    address_ += minInstLength_ * ((opIndex_ + operationAdvance) / maxOps_);
    opIndex_ = (opIndex_ + operationAdvance) % maxOps_;
  }
  void emit() {
    const uint32_t file = file_ < LineTable::kEndSequence ? static_cast<uint32_t>(file_) : LineTable::kEndSequence - 1;
    const uint32_t line = line_ >= 0 && line_ <= INT64_C(0xffffffff) ? static_cast<uint32_t>(line_) : 0;
    sequence_.push_back({address_, file, line});
  }
  void endSequence() {
    if (!sequence_.empty() && !isTombstone(sequence_.front().addr) && address_ > sequence_.front().addr) {
      table_.rows_.insert(table_.rows_.end(), sequence_.begin(), sequence_.end());
      table_.rows_.push_back({address_, LineTable::kEndSequence, 0});
    }
    reset();
  }

  LineTable& table_;
  const uint8_t minInstLength_;
  const uint8_t maxOps_;
  const int8_t lineBase_;
  const uint8_t lineRange_;
  const uint8_t opcodeBase_;
  const std::vector<uint8_t> opcodeLengths_;
  uint64_t address_ = 0;
  uint64_t opIndex_ = 0;
  uint64_t file_ = 1;
  int64_t line_ = 1;
  std::vector<LineTable::Row> sequence_;
};

std::optional<LineTable> LineTable::parse(const LineSections& sections, uint64_t offset, std::string_view compDir,
                                          std::string& error) {
  if (offset >= sections.line.size()) {
    error = "line table offset " + std::to_string(offset) + " is outside .debug_line";
    return std::nullopt;
  }
  ByteReader r(sections.line, static_cast<std::size_t>(offset));
  uint64_t unitLength = r.u32();
  bool dwarf64 = false;
  if (unitLength == 0xffffffffu) {
    dwarf64 = true;
    unitLength = r.u64();
  } else if (unitLength >= 0xfffffff0u) {
    error = "reserved line table length";
    return std::nullopt;
  }
  ByteReader unit = r.sub(unitLength);
  LineTable table;
  const uint16_t version = unit.u16();
  if (unit.failed() || version < 2 || version > 5) {
    error = "unsupported or truncated line table (version " + std::to_string(version) + ")";
    return std::nullopt;
  }
  if (version >= 5) {
    unit.u8();  // address_size: DW_LNE_set_address carries its own length
    unit.u8();  // segment_selector_size
  }
  ByteReader header = unit.sub(unit.fixed(dwarf64 ? 8 : 4));
  // `unit` is now at the first opcode of the program.
  const uint8_t minInstLength = header.u8();
  const uint8_t maxOps = version >= 4 ? header.u8() : 1;
  header.u8();  // default_is_stmt
  const auto lineBase = static_cast<int8_t>(header.u8());
  const uint8_t lineRange = header.u8();
  const uint8_t opcodeBase = header.u8();
  std::vector<uint8_t> opcodeLengths;
  for (int i = 1; i < opcodeBase; ++i) opcodeLengths.push_back(header.u8());
  if (header.failed() || lineRange == 0 || opcodeBase == 0) {
    error = "malformed line table header";
    return std::nullopt;
  }

  std::vector<std::string_view> dirs;
  std::vector<FileEntry> files;
  if (version >= 5) {
    const bool ok =
        readV5Entries(header, dwarf64, sections, [&](const FileEntry& e) { dirs.push_back(e.name); }) &&
        readV5Entries(header, dwarf64, sections, [&](const FileEntry& e) { files.push_back(e); });
    if (!ok) {
      error = "malformed DWARF 5 directory or file table";
      return std::nullopt;
    }
  } else {
    files.push_back({});  // DWARF 2-4 files are numbered from 1
    for (std::string_view dir = header.cstring(); !dir.empty() && !header.failed(); dir = header.cstring())
      dirs.push_back(dir);
    for (std::string_view name = header.cstring(); !name.empty() && !header.failed(); name = header.cstring()) {
      const uint64_t dir = header.uleb();
      header.uleb();  // modification time
      header.uleb();  // length
      files.push_back({name, dir});
    }
    if (header.failed()) {
      error = "malformed line table file table";
      return std::nullopt;
    }
  }

  std::vector<std::pair<std::string_view, uint64_t>> definedFiles;
  LineProgram program(table, minInstLength, maxOps, lineBase, lineRange, opcodeBase, std::move(opcodeLengths));
  if (!program.run(unit, definedFiles) && table.rows_.empty()) {
    error = "malformed line number program";
    return std::nullopt;
  }
  for (const auto& [name, dir] : definedFiles) files.push_back({name, dir});

  const bool v5 = version >= 5;
  table.files_.resize(files.size());
  table.fileKnown_.resize(files.size(), false);
  for (std::size_t i = v5 ? 0 : 1; i < files.size(); ++i) {
    const FileEntry& f = files[i];
    std::string_view includeDir;
    if (v5 && f.dir < dirs.size()) includeDir = dirs[f.dir];
    if (!v5 && f.dir > 0 && f.dir <= dirs.size()) includeDir = dirs[f.dir - 1];
    table.files_[i] = joinSourcePath(compDir, includeDir, v5 && f.dir == 0, f.name);
    table.fileKnown_[i] = true;
  }

  table.sortRows();
  return table;
}

void LineTable::sortRows() {
  // End markers sort before rows at the same address so a sequence starting where another ends wins.
  const auto before = [](const Row& a, const Row& b) {
    if (a.addr != b.addr) return a.addr < b.addr;
    return (a.file == kEndSequence) > (b.file == kEndSequence);
  };
  if (std::is_sorted(rows_.begin(), rows_.end(), before)) return;
  // Usually each sequence is in order and only the sequences are not: order them as wholes.
  struct Sequence {
    uint64_t start;
    std::size_t begin, end;
  };
  std::vector<Sequence> sequences;
  for (std::size_t i = 0, begin = 0; i < rows_.size(); ++i) {
    if (rows_[i].file != kEndSequence) continue;
    sequences.push_back({rows_[begin].addr, begin, i + 1});
    begin = i + 1;
  }
  std::stable_sort(sequences.begin(), sequences.end(),
                   [](const Sequence& a, const Sequence& b) { return a.start < b.start; });
  std::vector<Row> sorted;
  sorted.reserve(rows_.size());
  for (const Sequence& q : sequences) sorted.insert(sorted.end(), rows_.begin() + q.begin, rows_.begin() + q.end);
  if (!std::is_sorted(sorted.begin(), sorted.end(), before)) std::stable_sort(sorted.begin(), sorted.end(), before);
  rows_ = std::move(sorted);
}

std::optional<LineTable::Hit> LineTable::lookup(uint64_t vaddr) const {
  auto it = std::upper_bound(rows_.begin(), rows_.end(), vaddr, [](uint64_t a, const Row& r) { return a < r.addr; });
  if (it == rows_.begin()) return std::nullopt;
  const Row& row = *(it - 1);
  if (row.file == kEndSequence) return std::nullopt;
  return Hit{row.file, row.line};
}

const std::string* LineTable::fileName(uint64_t index) const {
  return index < files_.size() && fileKnown_[index] ? &files_[index] : nullptr;
}

std::vector<std::pair<uint64_t, uint64_t>> LineTable::sequenceRanges() const {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  bool open = false;
  for (const Row& row : rows_) {
    if (row.file == kEndSequence) {
      if (open) ranges.back().second = row.addr;
      open = false;
    } else if (!open) {
      ranges.emplace_back(row.addr, row.addr);
      open = true;
    }
  }
  return ranges;
}

}  // namespace heaptrail::symbols
