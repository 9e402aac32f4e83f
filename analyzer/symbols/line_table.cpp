#include "line_table.h"

#include <dwarf.h>
#include <libdwarf.h>

#include <algorithm>
#include <unordered_map>

namespace heaptrail::symbols {

namespace {

class DwarfHandle {
 public:
  DwarfHandle() = default;
  ~DwarfHandle() {
    if (dbg_ != nullptr) {
      Dwarf_Error err = nullptr;
      dwarf_finish(dbg_, &err);
    }
  }
  DwarfHandle(const DwarfHandle&) = delete;
  DwarfHandle& operator=(const DwarfHandle&) = delete;
  Dwarf_Debug get() const { return dbg_; }
  Dwarf_Debug* out() { return &dbg_; }

 private:
  Dwarf_Debug dbg_ = nullptr;
};

class DieHandle {
 public:
  explicit DieHandle(Dwarf_Die die) : die_(die) {}
  ~DieHandle() {
    if (die_ != nullptr) dwarf_dealloc_die(die_);
  }
  DieHandle(const DieHandle&) = delete;
  DieHandle& operator=(const DieHandle&) = delete;
  Dwarf_Die get() const { return die_; }

 private:
  Dwarf_Die die_;
};

class LineContextHandle {
 public:
  explicit LineContextHandle(Dwarf_Line_Context ctx) : ctx_(ctx) {}
  ~LineContextHandle() {
    if (ctx_ != nullptr) dwarf_srclines_dealloc_b(ctx_);
  }
  LineContextHandle(const LineContextHandle&) = delete;
  LineContextHandle& operator=(const LineContextHandle&) = delete;
  Dwarf_Line_Context get() const { return ctx_; }

 private:
  Dwarf_Line_Context ctx_;
};

// Frees a Dwarf_Error returned by a call on a live Dwarf_Debug.
class ErrorSink {
 public:
  explicit ErrorSink(Dwarf_Debug dbg) : dbg_(dbg) {}
  ~ErrorSink() { clear(); }
  ErrorSink(const ErrorSink&) = delete;
  ErrorSink& operator=(const ErrorSink&) = delete;
  Dwarf_Error* out() {
    clear();
    return &err_;
  }
  std::string message() const { return err_ != nullptr ? dwarf_errmsg(err_) : "unknown libdwarf error"; }
  void clear() {
    if (err_ != nullptr) dwarf_dealloc_error(dbg_, err_);
    err_ = nullptr;
  }

 private:
  Dwarf_Debug dbg_;
  Dwarf_Error err_ = nullptr;
};

bool isTombstone(uint64_t addr) {
  // Address 0 and -1/-2 are what linkers write for discarded (gc'ed / COMDAT) functions.
  return addr == 0 || addr >= UINT64_MAX - 1;
}

}  // namespace

class LineTableBuilder {
 public:
  explicit LineTableBuilder(LineTable& table) : table_(table) {}

  void addCu(Dwarf_Debug dbg, Dwarf_Die cuDie) {
    ErrorSink err(dbg);
    std::string compDir;
    char* text = nullptr;
    // dwarf_die_text returns a pointer into the string section: not ours to free.
    if (dwarf_die_text(cuDie, DW_AT_comp_dir, &text, err.out()) == DW_DLV_OK && text != nullptr) compDir = text;

    Dwarf_Unsigned version = 0;
    Dwarf_Small tableCount = 0;
    Dwarf_Line_Context rawCtx = nullptr;
    if (dwarf_srclines_b(cuDie, &version, &tableCount, &rawCtx, err.out()) != DW_DLV_OK) return;
    LineContextHandle ctx(rawCtx);
    Dwarf_Line* lines = nullptr;
    Dwarf_Signed count = 0;
    if (dwarf_srclines_from_linecontext(ctx.get(), &lines, &count, err.out()) != DW_DLV_OK) return;

    std::unordered_map<Dwarf_Unsigned, uint32_t> cuFiles;
    sequence_.clear();
    for (Dwarf_Signed i = 0; i < count; ++i) {
      Dwarf_Line line = lines[i];
      Dwarf_Addr addr = 0;
      Dwarf_Bool endSequence = false;
      if (dwarf_lineaddr(line, &addr, err.out()) != DW_DLV_OK) continue;
      if (dwarf_lineendsequence(line, &endSequence, err.out()) != DW_DLV_OK) endSequence = false;
      if (endSequence) {
        finishSequence(addr);
        continue;
      }
      Dwarf_Unsigned lineNo = 0;
      Dwarf_Unsigned fileNo = 0;
      if (dwarf_lineno(line, &lineNo, err.out()) != DW_DLV_OK) continue;
      if (dwarf_line_srcfileno(line, &fileNo, err.out()) != DW_DLV_OK) continue;
      auto [it, inserted] = cuFiles.try_emplace(fileNo, 0);
      if (inserted) it->second = intern(dbg, line, compDir);
      sequence_.push_back({addr, it->second, static_cast<uint32_t>(lineNo)});
    }
    sequence_.clear();  // a sequence without end_sequence has no known extent: drop it
  }

  void finish() {
    // End markers sort before rows at the same address so a sequence starting where another ends wins.
    std::stable_sort(table_.rows_.begin(), table_.rows_.end(), [](const LineTable::Row& a, const LineTable::Row& b) {
      if (a.addr != b.addr) return a.addr < b.addr;
      return (a.file == LineTable::kEndSequence) > (b.file == LineTable::kEndSequence);
    });
    table_.rows_.shrink_to_fit();
  }

 private:
  uint32_t intern(Dwarf_Debug dbg, Dwarf_Line line, const std::string& compDir) {
    ErrorSink err(dbg);
    char* src = nullptr;
    std::string name;
    if (dwarf_linesrc(line, &src, err.out()) == DW_DLV_OK && src != nullptr) {
      name = src;
      dwarf_dealloc(dbg, src, DW_DLA_STRING);
    }
    std::filesystem::path p(name);
    if (!name.empty() && p.is_relative() && !compDir.empty()) p = std::filesystem::path(compDir) / p;
    name = p.lexically_normal().string();
    auto [it, inserted] = fileIndex_.try_emplace(name, static_cast<uint32_t>(table_.files_.size()));
    if (inserted) table_.files_.push_back(name);
    return it->second;
  }

  void finishSequence(uint64_t endAddr) {
    if (!sequence_.empty() && !isTombstone(sequence_.front().addr)) {
      table_.rows_.insert(table_.rows_.end(), sequence_.begin(), sequence_.end());
      table_.rows_.push_back({endAddr, LineTable::kEndSequence, 0});
    }
    sequence_.clear();
  }

  LineTable& table_;
  std::vector<LineTable::Row> sequence_;
  std::unordered_map<std::string, uint32_t> fileIndex_;
};

std::optional<LineTable> LineTable::load(const std::filesystem::path& path, std::string& error) {
  DwarfHandle dbg;
  Dwarf_Error initErr = nullptr;
  // No true-path buffer: libdwarf must not follow .gnu_debuglink on its own, the locator does that.
  int res = dwarf_init_path(path.c_str(), nullptr, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY, nullptr, nullptr, dbg.out(),
                            nullptr, 0, nullptr, &initErr);
  if (res != DW_DLV_OK) {
    error = res == DW_DLV_NO_ENTRY ? "no DWARF in " + path.string()
                                   : "libdwarf cannot read " + path.string() + ": " +
                                         (initErr != nullptr ? dwarf_errmsg(initErr) : "unknown error");
    return std::nullopt;
  }

  LineTable table;
  LineTableBuilder builder(table);
  ErrorSink err(dbg.get());
  for (;;) {
    Dwarf_Unsigned headerLength = 0;
    Dwarf_Half versionStamp = 0;
    Dwarf_Off abbrevOffset = 0;
    Dwarf_Half addressSize = 0;
    Dwarf_Half lengthSize = 0;
    Dwarf_Half extensionSize = 0;
    Dwarf_Sig8 signature{};
    Dwarf_Unsigned typeOffset = 0;
    Dwarf_Unsigned nextCu = 0;
    Dwarf_Half cuType = 0;
    res = dwarf_next_cu_header_d(dbg.get(), true, &headerLength, &versionStamp, &abbrevOffset, &addressSize,
                                 &lengthSize, &extensionSize, &signature, &typeOffset, &nextCu, &cuType, err.out());
    if (res == DW_DLV_NO_ENTRY) break;
    if (res != DW_DLV_OK) {
      if (table.rows_.empty()) {
        error = "cannot iterate compile units of " + path.string() + ": " + err.message();
        return std::nullopt;
      }
      break;  // keep what was read before the damage
    }
    Dwarf_Die rawDie = nullptr;
    if (dwarf_siblingof_b(dbg.get(), nullptr, true, &rawDie, err.out()) != DW_DLV_OK) continue;
    DieHandle cuDie(rawDie);
    builder.addCu(dbg.get(), cuDie.get());
  }
  builder.finish();
  return table;
}

std::optional<LineTable::Hit> LineTable::lookup(uint64_t vaddr) const {
  auto it = std::upper_bound(rows_.begin(), rows_.end(), vaddr, [](uint64_t a, const Row& r) { return a < r.addr; });
  if (it == rows_.begin()) return std::nullopt;
  const Row& row = *(it - 1);
  if (row.file == kEndSequence || row.line == 0) return std::nullopt;
  return Hit{&files_[row.file], row.line};
}

}  // namespace heaptrail::symbols
