#include "analyzer/symbols/symbol_table.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <memory>

#include "analyzer/symbols/elf_file.h"

namespace heaptrail::symbols {

std::string demangle(std::string_view mangled) {
  std::string name(mangled);
  // Versioned dynsym names ("foo@@GLIBC_2.2.5") never reach here: the version lives in .gnu.version.
  if (name.size() < 2 || name[0] != '_' || name[1] != 'Z') return name;
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                                  &std::free);
  if (status == 0 && out) return out.get();
  return name;
}

SymbolTable SymbolTable::build(const ElfFile& file, Source source) {
  SymbolTable table;
  Elf* elf = file.elf();
  Elf_Scn* scn = source == Source::Symtab ? file.symtab() : file.dynsym();
  if (scn == nullptr) return table;
  GElf_Shdr shdr;
  if (gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_entsize == 0) return table;
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (data == nullptr) return table;

  // 32-bit arm marks Thumb functions by bit 0 of their value; the code starts one byte lower.
  GElf_Ehdr ehdr;
  const bool thumbBit = gelf_getehdr(elf, &ehdr) != nullptr && ehdr.e_machine == EM_ARM;

  std::vector<uint64_t> sectionEnds;
  size_t shnum = 0;
  if (elf_getshdrnum(elf, &shnum) == 0) {
    sectionEnds.resize(shnum, 0);
    for (Elf_Scn* s = elf_nextscn(elf, nullptr); s != nullptr; s = elf_nextscn(elf, s)) {
      GElf_Shdr sh;
      if (gelf_getshdr(s, &sh) != nullptr && elf_ndxscn(s) < shnum) sectionEnds[elf_ndxscn(s)] = sh.sh_addr + sh.sh_size;
    }
  }

  // Local symbols follow the STT_FILE symbol of their source file (ELF spec); llvm-symbolizer
  // names that file for code the DWARF does not cover.
  uint32_t fileOffset = 0;
  uint32_t fileLength = 0;
  const size_t count = shdr.sh_size / shdr.sh_entsize;
  for (size_t i = 0; i < count; ++i) {
    GElf_Sym sym;
    if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) break;
    const int type = GELF_ST_TYPE(sym.st_info);
    if (type == STT_FILE) {
      const char* file = elf_strptr(elf, shdr.sh_link, sym.st_name);
      const std::string_view fv = file != nullptr ? file : "";
      if (table.names_.size() + fv.size() > std::numeric_limits<uint32_t>::max()) break;
      fileOffset = static_cast<uint32_t>(table.names_.size());
      fileLength = static_cast<uint32_t>(fv.size());
      table.names_.append(fv);
      continue;
    }
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
    if (thumbBit) sym.st_value &= ~uint64_t{1};
    const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (name == nullptr || name[0] == '\0') continue;
    std::string_view sv(name);
    if (table.names_.size() + sv.size() > std::numeric_limits<uint32_t>::max()) break;
    uint64_t sectionEnd = sym.st_shndx < sectionEnds.size() && sectionEnds[sym.st_shndx] > sym.st_value
                              ? sectionEnds[sym.st_shndx]
                              : sym.st_value + std::max<uint64_t>(sym.st_size, 1);
    const bool local = GELF_ST_BIND(sym.st_info) == STB_LOCAL;
    table.entries_.push_back({sym.st_value, sym.st_size, sectionEnd, static_cast<uint32_t>(table.names_.size()),
                              static_cast<uint32_t>(sv.size()), local ? fileOffset : 0, local ? fileLength : 0});
    table.names_.append(sv);
  }

  // Among aliases at one address the largest size wins, then the last in the table: the
  // choice llvm-symbolizer makes (glibc's "fputs" is listed before its alias "_IO_fputs").
  auto& e = table.entries_;
  std::stable_sort(e.begin(), e.end(), [](const Entry& a, const Entry& b) {
    return a.addr != b.addr ? a.addr < b.addr : a.size < b.size;
  });
  std::size_t kept = 0;
  for (std::size_t i = 0; i < e.size(); ++i)
    if (i + 1 == e.size() || e[i + 1].addr != e[i].addr) e[kept++] = e[i];
  e.resize(kept);
  e.shrink_to_fit();
  table.demangled_.resize(e.size());
  table.demangledReady_.resize(e.size(), false);
  return table;
}

const std::string& SymbolTable::nameOf(std::size_t index) const {
  if (!demangledReady_[index]) {
    const Entry& e = entries_[index];
    demangled_[index] = demangle(std::string_view(names_).substr(e.nameOffset, e.nameLength));
    demangledReady_[index] = true;
  }
  return demangled_[index];
}

const std::string* SymbolTable::found(std::size_t index, std::string_view* sourceFile) const {
  if (sourceFile != nullptr)
    *sourceFile = std::string_view(names_).substr(entries_[index].fileOffset, entries_[index].fileLength);
  return &nameOf(index);
}

const std::string* SymbolTable::lookup(uint64_t vaddr, Match match, std::string_view* sourceFile) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), vaddr,
                             [](uint64_t a, const Entry& e) { return a < e.addr; });
  if (it == entries_.begin()) return nullptr;
  const std::size_t nearest = static_cast<std::size_t>(it - entries_.begin()) - 1;
  // A few steps back covers symbols nested in a larger one (hand-written assembly).
  constexpr std::size_t kMaxBacktrack = 8;
  for (std::size_t k = 0; k < kMaxBacktrack && k <= nearest; ++k) {
    const Entry& e = entries_[nearest - k];
    if (e.size > 0 && vaddr - e.addr < e.size) return found(nearest - k, sourceFile);
  }
  // Only a symbol of unknown size may extend to vaddr: one whose size ends before it
  // would give a wrong name (common in stripped libraries with only .dynsym).
  if (match == Match::NearestPreceding && entries_[nearest].size == 0 && vaddr < entries_[nearest].sectionEnd)
    return found(nearest, sourceFile);
  return nullptr;
}

}  // namespace heaptrail::symbols
