#include "analyzer/symbols/dwarf_info.h"

#include <dwarf.h>
#include <fcntl.h>
#include <libdwarf.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "analyzer/symbols/dwarf_object.h"
#include "analyzer/symbols/elf_file.h"
#include "analyzer/symbols/line_table.h"
#include "analyzer/symbols/symbol_table.h"
#include "common/safe_open.h"

namespace heaptrail::symbols {

namespace {

bool isTombstone(uint64_t addr) { return addr == 0 || addr >= UINT64_MAX - 1; }

struct AddressRange {
  uint64_t low;
  uint64_t high;
};

// Frees the Dwarf_Error a failed libdwarf call leaves behind.
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

class Die {
 public:
  Die() = default;
  explicit Die(Dwarf_Die die) : die_(die) {}
  ~Die() { reset(); }
  Die(Die&& other) noexcept : die_(std::exchange(other.die_, nullptr)) {}
  Die& operator=(Die&& other) noexcept {
    if (this != &other) {
      reset();
      die_ = std::exchange(other.die_, nullptr);
    }
    return *this;
  }
  Die(const Die&) = delete;
  Die& operator=(const Die&) = delete;
  Dwarf_Die get() const { return die_; }
  Dwarf_Die* out() {
    reset();
    return &die_;
  }
  explicit operator bool() const { return die_ != nullptr; }

 private:
  void reset() {
    if (die_ != nullptr) dwarf_dealloc_die(die_);
    die_ = nullptr;
  }
  Dwarf_Die die_ = nullptr;
};

// One attribute of a DIE, freed when it goes out of scope.
class Attribute {
 public:
  Attribute(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half name) {
    ErrorSink err(dbg);
    if (dwarf_attr(die, name, &attr_, err.out()) != DW_DLV_OK) attr_ = nullptr;
  }
  ~Attribute() {
    if (attr_ != nullptr) dwarf_dealloc_attribute(attr_);
  }
  Attribute(const Attribute&) = delete;
  Attribute& operator=(const Attribute&) = delete;
  Dwarf_Attribute get() const { return attr_; }

 private:
  Dwarf_Attribute attr_ = nullptr;
};

std::optional<uint64_t> unsignedValue(Dwarf_Debug dbg, Dwarf_Attribute attr) {
  if (attr == nullptr) return std::nullopt;
  ErrorSink err(dbg);
  Dwarf_Unsigned value = 0;
  if (dwarf_formudata(attr, &value, err.out()) == DW_DLV_OK) return value;
  Dwarf_Signed signedValue = 0;
  if (dwarf_formsdata(attr, &signedValue, err.out()) == DW_DLV_OK && signedValue >= 0)
    return static_cast<uint64_t>(signedValue);
  return std::nullopt;
}

// Section offset (DW_FORM_sec_offset) or global DIE offset (reference forms).
std::optional<uint64_t> offsetValue(Dwarf_Debug dbg, Dwarf_Attribute attr) {
  if (attr == nullptr) return std::nullopt;
  ErrorSink err(dbg);
  Dwarf_Off offset = 0;
  if (dwarf_global_formref(attr, &offset, err.out()) == DW_DLV_OK) return offset;
  return unsignedValue(dbg, attr);
}

Dwarf_Half formOf(Dwarf_Debug dbg, Dwarf_Attribute attr) {
  ErrorSink err(dbg);
  Dwarf_Half form = 0;
  return dwarf_whatform(attr, &form, err.out()) == DW_DLV_OK ? form : 0;
}

// An inlined call (or a nested subprogram) inside a function, with its address ranges;
// a function's scopes are in depth-first order so that a subtree is a contiguous slice.
struct Scope {
  uint32_t firstRange = 0;
  uint32_t rangeCount = 0;
  uint32_t subtreeEnd = 0;  // index after the scope's last descendant
  bool inlined = false;     // false: a subprogram nested in the function (GNU C nested functions)
  Dwarf_Off die = 0;        // for the name
  uint64_t callFile = 0;    // DW_AT_call_file / call_line of an inlined call: where it was called
  uint32_t callLine = 0;
};

// A subprogram with code at unit level; what is inside it is read the first time one of its
// addresses is looked up.
struct Function {
  Dwarf_Off die = 0;
  bool walked = false;
  std::vector<Scope> scopes;
  std::vector<AddressRange> ranges;  // of the scopes
};

// Address ranges of units or of functions, each with the index of what it belongs to; they
// do not overlap in a linked file.
class RangeIndex {
 public:
  void add(uint64_t low, uint64_t high, uint32_t owner) { ranges_.push_back({low, high, owner}); }
  void sort() {
    std::sort(ranges_.begin(), ranges_.end(), [](const Entry& a, const Entry& b) { return a.low < b.low; });
  }
  // The owner of the range containing vaddr (of the sorted index).
  std::optional<uint32_t> find(uint64_t vaddr) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), vaddr,
                               [](uint64_t a, const Entry& r) { return a < r.low; });
    // Look a few back in case some ranges do overlap after all.
    for (int k = 0; k < 4 && it != ranges_.begin(); ++k) {
      --it;
      if (vaddr < it->high) return it->owner;
    }
    return std::nullopt;
  }

 private:
  struct Entry {
    uint64_t low;
    uint64_t high;
    uint32_t owner;
  };
  std::vector<Entry> ranges_;
};

struct Unit {
  Dwarf_Off dieOffset = 0;
  uint16_t version = 0;
  std::string compDir;
  std::optional<uint64_t> stmtList;
  uint64_t baseAddress = 0;  // DW_AT_low_pc of the unit: base of DWARF 2-4 range lists

  bool loaded = false;       // line table and functions read
  bool linesLoaded = false;
  // By abbreviation code: whether DIEs of that shape have DW_AT_low_pc or DW_AT_ranges at
  // all (declarations and abstract instances do not), so most DIEs without code cost no
  // attribute lookup.
  std::unordered_map<int, bool> abbrevHasCode;
  std::optional<LineTable> lines;
  std::vector<Function> functions;
  RangeIndex functionRanges;
};

}  // namespace

struct DwarfInfo::Impl {
  ~Impl() {
    if (dbg != nullptr) {
      Dwarf_Error err = nullptr;
      if (object)
        dwarf_object_finish(dbg, &err);
      else
        dwarf_finish(dbg, &err);
    }
  }

  bool indexUnits(std::string& error) {
    ErrorSink err(dbg);
    for (;;) {
      Dwarf_Unsigned headerLength = 0, typeOffset = 0, nextUnit = 0;
      Dwarf_Half version = 0, addressSize = 0, lengthSize = 0, extensionSize = 0, unitType = 0;
      Dwarf_Off abbrevOffset = 0;
      Dwarf_Sig8 signature{};
      const int res = dwarf_next_cu_header_d(dbg, true, &headerLength, &version, &abbrevOffset, &addressSize,
                                             &lengthSize, &extensionSize, &signature, &typeOffset, &nextUnit,
                                             &unitType, err.out());
      if (res == DW_DLV_NO_ENTRY) break;
      if (res != DW_DLV_OK) {
        if (units.empty()) {
          error = "cannot read the compile units of " + path.string() + ": " + err.message();
          return false;
        }
        break;  // keep what was read before the damage
      }
      Die unitDie;
      if (dwarf_siblingof_b(dbg, nullptr, true, unitDie.out(), err.out()) != DW_DLV_OK) continue;
      Dwarf_Half tag = 0;
      if (dwarf_tag(unitDie.get(), &tag, err.out()) != DW_DLV_OK || tag != DW_TAG_compile_unit) continue;
      addUnit(unitDie.get(), version);
    }
    unitRanges.sort();
    return true;
  }

  void addUnit(Dwarf_Die die, uint16_t version) {
    ErrorSink err(dbg);
    Unit unit;
    unit.version = version;
    Dwarf_Off offset = 0;
    if (dwarf_dieoffset(die, &offset, err.out()) != DW_DLV_OK) return;
    unit.dieOffset = offset;
    char* text = nullptr;
    // dwarf_die_text returns a pointer into a string section: not ours to free.
    if (dwarf_die_text(die, DW_AT_comp_dir, &text, err.out()) == DW_DLV_OK && text != nullptr) unit.compDir = text;
    unit.stmtList = offsetValue(dbg, Attribute(dbg, die, DW_AT_stmt_list).get());
    Dwarf_Addr low = 0;
    if (dwarf_lowpc(die, &low, err.out()) == DW_DLV_OK) unit.baseAddress = low;
    const auto index = static_cast<uint32_t>(units.size());
    std::vector<AddressRange> ranges;
    readRanges(die, unit, ranges);
    units.push_back(std::move(unit));
    if (ranges.empty()) {
      // No address range on the unit DIE: fall back to the extent of its line table.
      loadLines(units.back());
      if (units.back().lines)
        for (const auto& [low, high] : units.back().lines->sequenceRanges()) ranges.push_back({low, high});
    }
    for (const auto& r : ranges) unitRanges.add(r.low, r.high, index);
  }

  // DW_AT_low_pc/high_pc or DW_AT_ranges of a DIE, tombstoned and empty ranges left out.
  bool mayHaveCode(Unit& unit, Dwarf_Die die) {
    auto [it, inserted] = unit.abbrevHasCode.try_emplace(dwarf_die_abbrev_code(die), false);
    if (inserted) {
      ErrorSink err(dbg);
      Dwarf_Bool low = false, ranges = false;
      if (dwarf_hasattr(die, DW_AT_low_pc, &low, err.out()) != DW_DLV_OK) low = false;
      if (dwarf_hasattr(die, DW_AT_ranges, &ranges, err.out()) != DW_DLV_OK) ranges = false;
      it->second = low || ranges;
    }
    return it->second;
  }

  void readRanges(Dwarf_Die die, const Unit& unit, std::vector<AddressRange>& out) {
    const auto keep = [&out](uint64_t low, uint64_t high) {
      if (high > low && !isTombstone(low)) out.push_back({low, high});
    };
    ErrorSink err(dbg);
    Dwarf_Addr low = 0, high = 0;
    Dwarf_Half highForm = 0;
    Dwarf_Form_Class highClass = DW_FORM_CLASS_UNKNOWN;
    if (dwarf_lowpc(die, &low, err.out()) == DW_DLV_OK &&
        dwarf_highpc_b(die, &high, &highForm, &highClass, err.out()) == DW_DLV_OK) {
      keep(low, highClass == DW_FORM_CLASS_CONSTANT ? low + high : high);
      return;
    }
    const Attribute ranges(dbg, die, DW_AT_ranges);
    Dwarf_Attribute rangesAttr = ranges.get();
    if (rangesAttr == nullptr) return;
    const Dwarf_Half form = formOf(dbg, rangesAttr);
    if (unit.version >= 5) {
      const auto value = form == DW_FORM_rnglistx ? unsignedValue(dbg, rangesAttr) : offsetValue(dbg, rangesAttr);
      if (!value) return;
      Dwarf_Rnglists_Head head = nullptr;
      Dwarf_Unsigned count = 0, globalOffset = 0;
      if (dwarf_rnglists_get_rle_head(rangesAttr, form, *value, &head, &count, &globalOffset, err.out()) !=
          DW_DLV_OK)
        return;
      for (Dwarf_Unsigned i = 0; i < count; ++i) {
        unsigned length = 0, code = 0;
        Dwarf_Unsigned raw1 = 0, raw2 = 0, low = 0, high = 0;
        Dwarf_Bool unavailable = false;
        if (dwarf_get_rnglists_entry_fields_a(head, i, &length, &code, &raw1, &raw2, &unavailable, &low, &high,
                                              err.out()) != DW_DLV_OK)
          break;
        if (unavailable) continue;
        switch (code) {
          case DW_RLE_offset_pair:
          case DW_RLE_start_end:
          case DW_RLE_start_length:
          case DW_RLE_startx_endx:
          case DW_RLE_startx_length: keep(low, high); break;
          default: break;
        }
      }
      dwarf_dealloc_rnglists_head(head);
      return;
    }
    const auto offset = offsetValue(dbg, rangesAttr);
    if (!offset) return;
    Dwarf_Ranges* list = nullptr;
    Dwarf_Signed count = 0;
    Dwarf_Unsigned bytes = 0;
    Dwarf_Off realOffset = 0;
    if (dwarf_get_ranges_b(dbg, *offset, die, &realOffset, &list, &count, &bytes, err.out()) != DW_DLV_OK) return;
    uint64_t base = unit.baseAddress;
    for (Dwarf_Signed i = 0; i < count; ++i) {
      const Dwarf_Ranges& r = list[i];
      if (r.dwr_type == DW_RANGES_END) break;
      if (r.dwr_type == DW_RANGES_ADDRESS_SELECTION) {
        base = r.dwr_addr2;
        continue;
      }
      keep(base + r.dwr_addr1, base + r.dwr_addr2);
    }
    dwarf_ranges_dealloc(dbg, list, count);
  }

  Unit* unitFor(uint64_t vaddr) {
    const auto unit = unitRanges.find(vaddr);
    return unit ? &units[*unit] : nullptr;
  }

  void loadLines(Unit& unit) {
    if (unit.linesLoaded) return;
    unit.linesLoaded = true;
    if (unit.stmtList) {
      std::string error;
      unit.lines = LineTable::parse(lineSections, *unit.stmtList, unit.compDir, error);
    }
  }

  void load(Unit& unit) {
    if (unit.loaded) return;
    unit.loaded = true;
    ++loadedUnits;
    loadLines(unit);
    ErrorSink err(dbg);
    Die unitDie;
    if (dwarf_offdie_b(dbg, unit.dieOffset, true, unitDie.out(), err.out()) != DW_DLV_OK) return;
    findFunctions(unit, unitDie.get());
    unit.functionRanges.sort();
  }

  // Calls `visit` for each child DIE of `parent`.
  template <typename Visit>
  void forEachChild(Dwarf_Die parent, Visit visit) {
    ErrorSink err(dbg);
    Die child;
    if (dwarf_child(parent, child.out(), err.out()) != DW_DLV_OK) return;
    for (;;) {
      Dwarf_Half tag = 0;
      if (dwarf_tag(child.get(), &tag, err.out()) == DW_DLV_OK) visit(child.get(), tag);
      Die next;
      if (dwarf_siblingof_b(dbg, child.get(), true, next.out(), err.out()) != DW_DLV_OK) return;
      child = std::move(next);
    }
  }

  // The subprograms with code directly in the unit (or in its namespaces): not what is
  // inside them, which only the addresses looked up need.
  void findFunctions(Unit& unit, Dwarf_Die parent) {
    forEachChild(parent, [&](Dwarf_Die die, Dwarf_Half tag) {
      if (tag == DW_TAG_namespace || tag == DW_TAG_module) {
        findFunctions(unit, die);
        return;
      }
      if (tag != DW_TAG_subprogram) return;  // types and variables hold no code of their own
      if (!mayHaveCode(unit, die)) return;
      std::vector<AddressRange> ranges;
      readRanges(die, unit, ranges);
      if (ranges.empty()) return;  // a declaration or an abstract instance: no code
      ErrorSink err(dbg);
      Function function;
      if (dwarf_dieoffset(die, &function.die, err.out()) != DW_DLV_OK) return;
      const auto index = static_cast<uint32_t>(unit.functions.size());
      unit.functions.push_back(std::move(function));
      for (const auto& r : ranges) unit.functionRanges.add(r.low, r.high, index);
    });
  }

  void walkFunction(Unit& unit, Function& function) {
    function.walked = true;
    ErrorSink err(dbg);
    Die die;
    if (dwarf_offdie_b(dbg, function.die, true, die.out(), err.out()) != DW_DLV_OK) return;
    walkScopes(unit, function, die.get());
  }

  // Depth-first over what can hold code inside a function: inlined calls, lexical blocks,
  // nested subprograms.
  void walkScopes(Unit& unit, Function& function, Dwarf_Die parent) {
    forEachChild(parent, [&](Dwarf_Die die, Dwarf_Half tag) {
      switch (tag) {
        case DW_TAG_subprogram:
        case DW_TAG_inlined_subroutine: break;
        case DW_TAG_lexical_block:
        case DW_TAG_try_block:
        case DW_TAG_catch_block: walkScopes(unit, function, die); return;
        default: return;  // parameters, variables, types, call sites: no code of their own
      }
      if (!mayHaveCode(unit, die)) return;
      std::vector<AddressRange> ranges;
      readRanges(die, unit, ranges);
      if (ranges.empty()) return;  // optimized away entirely
      ErrorSink err(dbg);
      Scope scope;
      scope.inlined = tag == DW_TAG_inlined_subroutine;
      if (dwarf_dieoffset(die, &scope.die, err.out()) != DW_DLV_OK) return;
      if (scope.inlined) {
        scope.callFile = unsignedValue(dbg, Attribute(dbg, die, DW_AT_call_file).get()).value_or(0);
        scope.callLine = static_cast<uint32_t>(unsignedValue(dbg, Attribute(dbg, die, DW_AT_call_line).get()).value_or(0));
      }
      scope.firstRange = static_cast<uint32_t>(function.ranges.size());
      scope.rangeCount = static_cast<uint32_t>(ranges.size());
      function.ranges.insert(function.ranges.end(), ranges.begin(), ranges.end());
      const auto index = static_cast<uint32_t>(function.scopes.size());
      function.scopes.push_back(scope);
      walkScopes(unit, function, die);
      function.scopes[index].subtreeEnd = static_cast<uint32_t>(function.scopes.size());
    });
  }

  static bool contains(const Function& function, const Scope& scope, uint64_t vaddr) {
    for (uint32_t i = 0; i < scope.rangeCount; ++i) {
      const AddressRange& r = function.ranges[scope.firstRange + i];
      if (vaddr >= r.low && vaddr < r.high) return true;
    }
    return false;
  }

  static Function* functionFor(Unit& unit, uint64_t vaddr) {
    const auto function = unit.functionRanges.find(vaddr);
    return function ? &unit.functions[*function] : nullptr;
  }

  // DIEs of the scopes containing vaddr, innermost first, ending with the subprogram the
  // code belongs to.
  std::vector<const Scope*> chain(Unit& unit, uint64_t vaddr, Dwarf_Off& subprogram) {
    Function* function = functionFor(unit, vaddr);
    if (function == nullptr) return {};
    if (!function->walked) walkFunction(unit, *function);
    subprogram = function->die;
    std::vector<const Scope*> outerFirst;
    uint32_t i = 0;
    auto end = static_cast<uint32_t>(function->scopes.size());
    while (i < end) {
      const Scope& s = function->scopes[i];
      if (!contains(*function, s, vaddr)) {
        i = s.subtreeEnd;
        continue;
      }
      // A subprogram nested in another starts a chain of its own.
      if (!s.inlined) {
        outerFirst.clear();
        subprogram = s.die;
      } else {
        outerFirst.push_back(&s);
      }
      end = s.subtreeEnd;
      ++i;
    }
    return {outerFirst.rbegin(), outerFirst.rend()};
  }

  // Name of a subprogram or inlined call as llvm names it: the linkage name (demangled) if the
  // DIE or what it refers to (abstract origin, specification) has one, else DW_AT_name.
  const std::string& nameOf(Dwarf_Off offset) {
    auto [it, inserted] = names.try_emplace(offset);
    if (inserted) {
      std::string name = findName(offset, {DW_AT_linkage_name, DW_AT_MIPS_linkage_name});
      it->second = name.empty() ? findName(offset, {DW_AT_name}) : demangle(name);
    }
    return it->second;
  }

  std::string findName(Dwarf_Off start, std::initializer_list<Dwarf_Half> wanted) {
    ErrorSink err(dbg);
    std::vector<Dwarf_Off> work{start};
    std::vector<Dwarf_Off> seen{start};
    while (!work.empty() && seen.size() < 16) {
      const Dwarf_Off offset = work.back();
      work.pop_back();
      Die die;
      if (dwarf_offdie_b(dbg, offset, true, die.out(), err.out()) != DW_DLV_OK) continue;
      for (Dwarf_Half attr : wanted) {
        char* text = nullptr;
        if (dwarf_die_text(die.get(), attr, &text, err.out()) == DW_DLV_OK && text != nullptr) return text;
      }
      for (Dwarf_Half ref : {DW_AT_abstract_origin, DW_AT_specification}) {
        const auto target = offsetValue(dbg, Attribute(dbg, die.get(), ref).get());
        if (target && std::find(seen.begin(), seen.end(), *target) == seen.end()) {
          seen.push_back(*target);
          work.push_back(*target);
        }
      }
    }
    return {};
  }

  std::vector<SourceFrame> lookup(uint64_t vaddr, bool nameOutermost) {
    Unit* unit = unitFor(vaddr);
    if (unit == nullptr) return {};
    load(*unit);
    std::optional<LineTable::Hit> hit;
    if (unit->lines) hit = unit->lines->lookup(vaddr);
    const auto fileName = [&](uint64_t index) {
      const std::string* name = unit->lines ? unit->lines->fileName(index) : nullptr;
      return name != nullptr ? *name : std::string();
    };

    std::vector<SourceFrame> frames;
    Dwarf_Off subprogram = 0;
    const std::vector<const Scope*> inlined = chain(*unit, vaddr, subprogram);
    if (subprogram == 0) {
      if (hit) frames.push_back({"", fileName(hit->file), hit->line});
      return frames;
    }
    frames.resize(inlined.size() + 1);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      SourceFrame& frame = frames[i];
      const bool outermost = i == inlined.size();
      if (!outermost || nameOutermost) frame.function = nameOf(outermost ? subprogram : inlined[i]->die);
      if (i == 0) {
        if (hit) {
          frame.file = fileName(hit->file);
          frame.line = hit->line;
        }
      } else {
        // Where the frame inside this one was inlined: a point in this function.
        frame.file = fileName(inlined[i - 1]->callFile);
        frame.line = inlined[i - 1]->callLine;
      }
    }
    return frames;
  }

  std::filesystem::path path;
  common::UniqueFd fd;  // what libdwarf reads; members are destroyed after ~Impl's dwarf_finish
  Dwarf_Debug dbg = nullptr;
  std::unique_ptr<ElfFile> elf;  // for the raw .debug_line bytes
  std::unique_ptr<DwarfObject> object;  // libdwarf's sections, when it reads them through us
  SectionContents debugLine, debugLineStr, debugStr;
  LineSections lineSections;
  std::vector<Unit> units;
  RangeIndex unitRanges;
  std::size_t loadedUnits = 0;
  std::unordered_map<Dwarf_Off, std::string> names;
};

DwarfInfo::DwarfInfo(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DwarfInfo::~DwarfInfo() = default;

std::unique_ptr<DwarfInfo> DwarfInfo::open(const std::filesystem::path& path, std::string& error) {
  return open(common::openRegular(path), path, error);
}

std::unique_ptr<DwarfInfo> DwarfInfo::open(common::UniqueFd fd, const std::filesystem::path& path, std::string& error) {
  // Every DIE, attribute and list this file gets from libdwarf is freed right after use, so
  // libdwarf need not also record each allocation for dwarf_finish (a process-wide switch).
  static std::once_flag noAllocationTracking;
  std::call_once(noAllocationTracking, [] { dwarf_set_de_alloc_flag(0); });
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  if (fd) impl->fd.reset(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
  auto elf = ElfFile::open(std::move(fd), path);
  if (!elf.file || !impl->fd) {
    error = elf.reason;
    return nullptr;
  }
  impl->elf = std::move(elf.file);
  std::string sectionError;
  Dwarf_Error initErr = nullptr;
  int res = DW_DLV_NO_ENTRY;
  impl->object = DwarfObject::create(*impl->elf);
  if (impl->object) {
    // libdwarf reads the sections it needs through us, each loaded once, shared with the
    // line tables: compressed ones inflated by libdeflate, the others not copied.
    impl->lineSections = {impl->object->section(".debug_line", sectionError),
                          impl->object->section(".debug_line_str", sectionError),
                          impl->object->section(".debug_str", sectionError)};
    res = dwarf_object_init_b(impl->object->access(), nullptr, nullptr, DW_GROUPNUMBER_ANY, &impl->dbg, &initErr);
  } else {
    if (auto s = impl->elf->section(".debug_line", sectionError)) impl->debugLine = std::move(*s);
    if (auto s = impl->elf->section(".debug_line_str", sectionError)) impl->debugLineStr = std::move(*s);
    if (auto s = impl->elf->section(".debug_str", sectionError)) impl->debugStr = std::move(*s);
    impl->lineSections = {impl->debugLine.bytes(), impl->debugLineStr.bytes(), impl->debugStr.bytes()};
    // From the descriptor already opened: libdwarf never looks the path up again, nor
    // follows .gnu_debuglink on its own (the locator does that). It relocates ET_REL files.
    res = dwarf_init_b(impl->fd.get(), DW_DLC_READ, DW_GROUPNUMBER_ANY, nullptr, nullptr, &impl->dbg, &initErr);
  }
  if (res != DW_DLV_OK) {
    error = res == DW_DLV_NO_ENTRY ? "no DWARF in " + path.string()
                                   : "libdwarf cannot read " + path.string() + ": " +
                                         (initErr != nullptr ? dwarf_errmsg(initErr) : "unknown error");
    if (initErr != nullptr) dwarf_dealloc_error(nullptr, initErr);
    impl->dbg = nullptr;
    return nullptr;
  }
  if (!impl->indexUnits(error)) return nullptr;
  if (!sectionError.empty() && impl->lineSections.line.empty()) error = sectionError;
  return std::unique_ptr<DwarfInfo>(new DwarfInfo(std::move(impl)));
}

std::vector<SourceFrame> DwarfInfo::lookup(uint64_t vaddr, bool nameOutermost) {
  return impl_->lookup(vaddr, nameOutermost);
}
std::size_t DwarfInfo::unitCount() const { return impl_->units.size(); }
std::size_t DwarfInfo::unitsLoaded() const { return impl_->loadedUnits; }

}  // namespace heaptrail::symbols
