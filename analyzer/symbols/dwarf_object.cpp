#include "analyzer/symbols/dwarf_object.h"

#include <dwarf.h>

namespace heaptrail::symbols {

std::unique_ptr<DwarfObject> DwarfObject::create(const ElfFile& file) {
  Elf* elf = file.elf();
  GElf_Ehdr ehdr;
  if (gelf_getehdr(elf, &ehdr) == nullptr || ehdr.e_type == ET_REL) return nullptr;
  size_t count = 0, shstrndx = 0;
  if (elf_getshdrnum(elf, &count) != 0 || elf_getshdrstrndx(elf, &shstrndx) != 0 || count == 0 ||
      count > 0xffff)
    return nullptr;
  std::unique_ptr<DwarfObject> object(new DwarfObject(file));
  object->littleEndian_ = ehdr.e_ident[EI_DATA] != ELFDATA2MSB;
  object->pointerSize_ = ehdr.e_ident[EI_CLASS] == ELFCLASS32 ? 4 : 8;
  object->sections_.resize(count);
  for (size_t i = 1; i < count; ++i) {
    Elf_Scn* scn = elf_getscn(elf, i);
    GElf_Shdr shdr;
    if (scn == nullptr || gelf_getshdr(scn, &shdr) == nullptr) return nullptr;
    Section& s = object->sections_[i];
    const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
    s.name = name != nullptr ? name : "";
    // A compressed section is handed over inflated: libdwarf sees its real size.
    const auto size = file.uncompressedSize(scn);
    s.info.addr = shdr.sh_addr;
    s.info.type = shdr.sh_type;
    s.info.size = size.value_or(0);
    s.info.link = shdr.sh_link;
    s.info.info = shdr.sh_info;
    s.info.entrysize = shdr.sh_entsize;
  }
  for (Section& s : object->sections_) s.info.name = s.name.c_str();
  object->methods_.get_section_info = &DwarfObject::sectionInfo;
  object->methods_.get_byte_order = &DwarfObject::byteOrder;
  object->methods_.get_length_size = &DwarfObject::lengthSize;
  object->methods_.get_pointer_size = &DwarfObject::pointerSize;
  object->methods_.get_section_count = &DwarfObject::sectionCount;
  object->methods_.load_section = &DwarfObject::loadSection;
  object->methods_.relocate_a_section = nullptr;  // linked files only
  object->access_.object = object.get();
  object->access_.methods = &object->methods_;
  return object;
}

const SectionContents* DwarfObject::load(size_t index, std::string& error) {
  if (index == 0 || index >= sections_.size()) return nullptr;
  Section& s = sections_[index];
  if (!s.loaded) {
    s.loaded = true;
    s.contents = file_.section(index, error);
    // libdwarf trusts the size it was told: anything else is a damaged section.
    if (s.contents && s.contents->bytes().size() != s.info.size) s.contents.reset();
  }
  return s.contents ? &*s.contents : nullptr;
}

std::span<const uint8_t> DwarfObject::section(std::string_view name, std::string& error) {
  for (size_t i = 1; i < sections_.size(); ++i)
    if (sections_[i].name == name) {
      const SectionContents* c = load(i, error);
      return c ? c->bytes() : std::span<const uint8_t>();
    }
  return {};
}

int DwarfObject::sectionInfo(void* self, Dwarf_Half index, Dwarf_Obj_Access_Section* out, int* error) {
  auto* object = static_cast<DwarfObject*>(self);
  if (index >= object->sections_.size()) {
    *error = DW_DLE_MDE;
    return DW_DLV_NO_ENTRY;
  }
  *out = object->sections_[index].info;
  return DW_DLV_OK;
}

Dwarf_Endianness DwarfObject::byteOrder(void* self) {
  return static_cast<DwarfObject*>(self)->littleEndian_ ? DW_OBJECT_LSB : DW_OBJECT_MSB;
}

Dwarf_Small DwarfObject::lengthSize(void* self) { return static_cast<DwarfObject*>(self)->pointerSize_; }

Dwarf_Small DwarfObject::pointerSize(void* self) { return static_cast<DwarfObject*>(self)->pointerSize_; }

Dwarf_Unsigned DwarfObject::sectionCount(void* self) { return static_cast<DwarfObject*>(self)->sections_.size(); }

int DwarfObject::loadSection(void* self, Dwarf_Half index, Dwarf_Small** data, int* error) {
  auto* object = static_cast<DwarfObject*>(self);
  std::string ignored;
  const SectionContents* c = object->load(index, ignored);
  if (c == nullptr || c->bytes().empty()) {
    *error = DW_DLE_MDE;
    return DW_DLV_ERROR;
  }
  // libdwarf only reads what it is given.
  *data = const_cast<Dwarf_Small*>(c->bytes().data());
  return DW_DLV_OK;
}

}  // namespace heaptrail::symbols
