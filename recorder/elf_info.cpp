#include "recorder/elf_info.h"

#include <gelf.h>
#include <libelf.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/build_id.h"
#include "common/safe_open.h"

namespace heaptrail::recorder {
namespace {

using ElfHandle = std::unique_ptr<Elf, decltype(&elf_end)>;

void readNeeded(Elf* elf, ElfInfo& info) {
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr)) continue;
    if (shdr.sh_type == SHT_DYNAMIC) {
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (!data || shdr.sh_entsize == 0) continue;
      for (size_t i = 0; i < shdr.sh_size / shdr.sh_entsize; ++i) {
        GElf_Dyn dyn;
        if (!gelf_getdyn(data, static_cast<int>(i), &dyn)) break;
        if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH) continue;
        const char* text = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
        if (!text) continue;
        if (dyn.d_tag == DT_NEEDED) {
          info.needed.emplace_back(text);
        } else {
          std::string list = text;
          for (size_t start = 0; start <= list.size();) {
            const size_t end = std::min(list.find(':', start), list.size());
            if (end > start) info.runpath.push_back(list.substr(start, end - start));
            start = end + 1;
          }
        }
      }
    }
  }
}

}  // namespace

std::optional<ElfInfo> readElfInfo(int fd) {
  if (elf_version(EV_CURRENT) == EV_NONE || fd < 0) return std::nullopt;
  ElfHandle elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr), elf_end);
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) return std::nullopt;

  ElfInfo info;
  size_t phnum = 0;
  if (elf_getphdrnum(elf.get(), &phnum) == 0) {
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr phdr;
      if (!gelf_getphdr(elf.get(), static_cast<int>(i), &phdr)) continue;
      if (phdr.p_type == PT_INTERP) {
        Elf_Data* data = elf_getdata_rawchunk(elf.get(), static_cast<int64_t>(phdr.p_offset),
                                              phdr.p_filesz, ELF_T_BYTE);
        if (data && data->d_size > 0)
          info.interpreter.assign(static_cast<const char*>(data->d_buf), strnlen(static_cast<const char*>(data->d_buf), data->d_size));
      }
    }
  }
  info.buildId = common::buildIdOf(elf.get());
  readNeeded(elf.get(), info);
  return info;
}

std::optional<FunctionIndex> indexFunctions(const std::filesystem::path& path, const std::vector<std::string>& names) {
  const common::UniqueFd fd = common::openRegular(path);
  return fd ? indexFunctions(fd.get(), names) : std::nullopt;
}

std::optional<FunctionIndex> indexFunctions(int fd, const std::vector<std::string>& names) {
  if (elf_version(EV_CURRENT) == EV_NONE || fd < 0) return std::nullopt;
  ElfHandle elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr), elf_end);
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) return std::nullopt;

  FunctionIndex index;
  GElf_Ehdr ehdr;
  const bool arm32 = gelf_getehdr(elf.get(), &ehdr) && ehdr.e_machine == EM_ARM;
  std::vector<GElf_Phdr> loads;
  size_t phnum = 0;
  if (elf_getphdrnum(elf.get(), &phnum) != 0) return std::nullopt;
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr phdr;
    if (!gelf_getphdr(elf.get(), static_cast<int>(i), &phdr) || phdr.p_type != PT_LOAD) continue;
    loads.push_back(phdr);
    if (phdr.p_flags & PF_X) {
      index.executableSegments.push_back({phdr.p_vaddr, phdr.p_offset, phdr.p_filesz});
      if (index.textEnd == 0 || phdr.p_vaddr < index.textStart) index.textStart = phdr.p_vaddr;
      index.textEnd = std::max<uint64_t>(index.textEnd, phdr.p_vaddr + phdr.p_memsz);
    }
  }
  for (const Elf64_Word wanted : {SHT_DYNSYM, SHT_SYMTAB}) {
    Elf_Scn* scn = nullptr;
    while ((scn = elf_nextscn(elf.get(), scn)) != nullptr) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != wanted || shdr.sh_entsize == 0) continue;
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (!data) continue;
      for (size_t i = 0; i < shdr.sh_size / shdr.sh_entsize; ++i) {
        GElf_Sym sym;
        if (!gelf_getsym(data, static_cast<int>(i), &sym)) break;
        if (sym.st_shndx == SHN_UNDEF || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
            GELF_ST_BIND(sym.st_info) == STB_LOCAL)
          continue;
        const char* name = elf_strptr(elf.get(), shdr.sh_link, sym.st_name);
        if (!name || index.functions.count(name) ||
            std::find(names.begin(), names.end(), name) == names.end())
          continue;
        for (const auto& load : loads) {
          if (sym.st_value < load.p_vaddr || sym.st_value >= load.p_vaddr + load.p_filesz) continue;
          const bool thumb = arm32 && (sym.st_value & 1);
          const uint64_t vaddr = thumb ? sym.st_value & ~uint64_t{1} : sym.st_value;
          index.functions[name] = {vaddr, vaddr - load.p_vaddr + load.p_offset, thumb, sym.st_size};
          break;
        }
      }
    }
  }
  return index;
}

}  // namespace heaptrail::recorder
