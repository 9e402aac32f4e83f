#include "recorder/unwind/unwind_table.h"

#include <gelf.h>
#include <libelf.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "common/build_id.h"
#include "recorder/unwind/call_frames.h"

namespace heaptrail::recorder::unwind {
namespace {

using ElfHandle = std::unique_ptr<Elf, decltype(&elf_end)>;
constexpr uint32_t kGapRule = HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);

struct Section {
  std::span<const uint8_t> bytes;
  uint64_t vaddr = 0;
};

std::optional<Section> findSection(Elf* elf, const char* wanted) {
  size_t names = 0;
  if (elf_getshdrstrndx(elf, &names) != 0) return std::nullopt;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || shdr.sh_type == SHT_NOBITS) continue;
    const char* name = elf_strptr(elf, names, shdr.sh_name);
    if (!name || std::strcmp(name, wanted) != 0) continue;
    // Compressed sections (SHF_COMPRESSED .debug_frame) are not read: the table would
    // need zlib on the device for a section that .eh_frame almost always replaces.
    if (shdr.sh_flags & SHF_COMPRESSED) return std::nullopt;
    Elf_Data* data = elf_rawdata(scn, nullptr);
    if (!data || !data->d_buf || data->d_size == 0) return std::nullopt;
    return Section{{static_cast<const uint8_t*>(data->d_buf), data->d_size}, shdr.sh_addr};
  }
  return std::nullopt;
}

// Flattens the functions into sorted rows: later functions win where two overlap, a
// gap row ends every covered range not followed directly by the next one, and
// consecutive rows with the same rule are merged.
std::vector<ht_unwind_row> flatten(std::vector<FrameFunction> functions, uint64_t base) {
  std::stable_sort(functions.begin(), functions.end(),
                   [](const FrameFunction& a, const FrameFunction& b) { return a.start < b.start; });
  std::vector<FrameRow> flat;
  for (size_t i = 0; i < functions.size(); ++i) {
    const FrameFunction& fn = functions[i];
    if (fn.start < base) continue;
    while (!flat.empty() && flat.back().pc >= fn.start) flat.pop_back();
    for (const FrameRow& row : fn.rows) flat.push_back(row);
    const bool nextAdjacent = i + 1 < functions.size() && functions[i + 1].start == fn.end;
    if (!nextAdjacent) flat.push_back({fn.end, kGapRule});
  }
  std::vector<ht_unwind_row> rows;
  rows.reserve(flat.size());
  for (const FrameRow& row : flat) {
    const uint64_t pc = row.pc - base;
    if (pc > UINT32_MAX) break;
    if (!rows.empty() && rows.back().rule == row.rule) continue;
    if (!rows.empty() && rows.back().pc == pc) {
      rows.back().rule = row.rule;
      continue;
    }
    rows.push_back({static_cast<uint32_t>(pc), row.rule});
  }
  if (rows.size() > HT_UNWIND_MAX_ROWS) rows.clear();
  return rows;
}

// The code at the ELF entry point is the outermost frame of a process's first thread:
// nothing calls it. Where it has no CFI (ld.so's _start and _dl_start_user, hand-written,
// through which every static constructor's stack goes), a walk that reaches it is
// complete, not cut: it gets a STOP row up to the next described function.
void markEntryOutermost(std::vector<ht_unwind_row>& rows, uint64_t entry, uint64_t base) {
  if (rows.empty() || entry < base || entry - base > UINT32_MAX) return;
  const auto pc = static_cast<uint32_t>(entry - base);
  auto it = std::upper_bound(rows.begin(), rows.end(), pc, [](uint32_t p, const ht_unwind_row& r) { return p < r.pc; });
  // Described by an FDE (glibc's own _start says where it ends: cfi_undefined rip).
  if (it != rows.begin() && HT_RULE_CFA_KIND(std::prev(it)->rule) != HT_CFA_UNSUPPORTED) return;
  if (it == rows.end() || it == rows.begin()) return;  // outside the described code: no end for it
  if (std::prev(it)->pc == pc)
    std::prev(it)->rule = HT_RULE(HT_CFA_STOP, 0, 0);
  else
    rows.insert(it, ht_unwind_row{pc, HT_RULE(HT_CFA_STOP, 0, 0)});
}

}  // namespace

uint32_t UnwindTable::ruleAt(uint64_t vaddr) const {
  if (vaddr < base || vaddr - base > UINT32_MAX) return kGapRule;
  return ruleAtRow(static_cast<uint32_t>(vaddr - base));
}

uint32_t UnwindTable::ruleAtRow(uint32_t pc) const {
  auto it = std::upper_bound(rows.begin(), rows.end(), pc,
                             [](uint32_t value, const ht_unwind_row& row) { return value < row.pc; });
  if (it == rows.begin()) return kGapRule;
  return std::prev(it)->rule;
}

std::optional<uint64_t> UnwindTable::biasFor(uint64_t start, uint64_t fileOffset) const {
  for (const Segment& s : segments) {
    if (fileOffset < s.fileOffset || fileOffset >= s.fileOffset + s.fileSize) continue;
    const uint64_t vaddrAtStart = s.vaddr + (fileOffset - s.fileOffset);
    return start - vaddrAtStart + base;
  }
  return std::nullopt;
}

UnwindTable compileUnwindTable(int fd, CfiArch arch) {
  UnwindTable table;
  if (elf_version(EV_CURRENT) == EV_NONE || fd < 0) return table;
  ElfHandle elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr), elf_end);
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) return table;
  GElf_Ehdr ehdr;
  const unsigned machine = arch == CfiArch::Aarch64 ? EM_AARCH64 : EM_X86_64;
  if (!gelf_getehdr(elf.get(), &ehdr) || ehdr.e_machine != machine || ehdr.e_ident[EI_CLASS] != ELFCLASS64)
    return table;
  table.buildId = common::buildIdOf(elf.get());

  size_t phnum = 0;
  if (elf_getphdrnum(elf.get(), &phnum) != 0) return table;
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr phdr;
    if (!gelf_getphdr(elf.get(), static_cast<int>(i), &phdr)) continue;
    if (phdr.p_type == PT_LOAD && (phdr.p_flags & PF_X))
      table.segments.push_back({phdr.p_vaddr, phdr.p_offset, phdr.p_filesz});
  }
  if (table.segments.empty()) return table;
  table.base = std::min_element(table.segments.begin(), table.segments.end(), [](const auto& a, const auto& b) {
                 return a.vaddr < b.vaddr;
               })->vaddr;

  FrameSection kind = FrameSection::EhFrame;
  auto section = findSection(elf.get(), ".eh_frame");
  if (!section) {
    section = findSection(elf.get(), ".debug_frame");
    kind = FrameSection::DebugFrame;
  }
  if (!section) return table;
  DecodedFrames decoded = decodeCallFrames(section->bytes, section->vaddr, kind, arch);
  table.malformedEntries = decoded.malformedEntries;
  table.rows = flatten(std::move(decoded.functions), table.base);
  markEntryOutermost(table.rows, ehdr.e_entry, table.base);
  if (!table.rows.empty()) table.source = kind == FrameSection::EhFrame ? FrameSource::EhFrame : FrameSource::DebugFrame;
  return table;
}

}  // namespace heaptrail::recorder::unwind
