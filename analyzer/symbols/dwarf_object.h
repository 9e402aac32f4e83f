// libdwarf's view of one ELF file (its object access interface) served from our ElfFile
// instead of libdwarf's own ELF reader: a section is loaded the first time libdwarf asks
// for it, an uncompressed one as a view of the file's mapping (no copy), a compressed one
// (SHF_COMPRESSED: Debian's debug packages) inflated once by ElfFile::section, and kept
// for the DwarfInfo's own readers too (.debug_line, .debug_str).
#pragma once

#include <libdwarf.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzer/symbols/elf_file.h"

namespace heaptrail::symbols {

class DwarfObject {
 public:
  // nullptr for files whose DWARF needs relocating (ET_REL: kernel modules, object
  // files) or whose sections cannot be listed: dwarf_init_b reads those.
  static std::unique_ptr<DwarfObject> create(const ElfFile& file);
  DwarfObject(const DwarfObject&) = delete;
  DwarfObject& operator=(const DwarfObject&) = delete;

  // For dwarf_object_init_b; valid as long as this object.
  Dwarf_Obj_Access_Interface* access() { return &access_; }
  // The contents of the named section, loaded (and decompressed) at most once; empty when
  // absent or unreadable (`error` says why for the latter).
  std::span<const uint8_t> section(std::string_view name, std::string& error);

 private:
  struct Section {
    std::string name;
    Dwarf_Obj_Access_Section info{};
    bool loaded = false;
    std::optional<SectionContents> contents;
  };
  explicit DwarfObject(const ElfFile& file) : file_(file) {}
  const SectionContents* load(size_t index, std::string& error);

  static int sectionInfo(void* self, Dwarf_Half index, Dwarf_Obj_Access_Section* out, int* error);
  static Dwarf_Endianness byteOrder(void* self);
  static Dwarf_Small lengthSize(void* self);
  static Dwarf_Small pointerSize(void* self);
  static Dwarf_Unsigned sectionCount(void* self);
  static int loadSection(void* self, Dwarf_Half index, Dwarf_Small** data, int* error);

  const ElfFile& file_;
  std::vector<Section> sections_;
  bool littleEndian_ = true;
  Dwarf_Small pointerSize_ = 8;
  Dwarf_Obj_Access_Methods methods_{};
  Dwarf_Obj_Access_Interface access_{};
};

}  // namespace heaptrail::symbols
