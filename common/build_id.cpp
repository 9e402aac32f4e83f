#include "common/build_id.h"

#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>

#include <cstring>
#include <memory>

#include "common/safe_open.h"
#include "common/unique_fd.h"

namespace heaptrail::common {
namespace {

constexpr unsigned kNoteGnuBuildId = 3;  // NT_GNU_BUILD_ID

}  // namespace

std::string buildIdFromNotes(Elf_Data* notes) {
  if (notes == nullptr || notes->d_buf == nullptr) return {};
  const char* bytes = static_cast<const char*>(notes->d_buf);
  size_t offset = 0;
  GElf_Nhdr note;
  size_t nameOffset = 0, descOffset = 0;
  while (offset < notes->d_size) {
    const size_t next = gelf_getnote(notes, offset, &note, &nameOffset, &descOffset);
    if (next == 0) break;
    if (note.n_type == kNoteGnuBuildId && note.n_namesz == 4 && std::memcmp(bytes + nameOffset, "GNU", 4) == 0 &&
        note.n_descsz > 0)
      return std::string(bytes + descOffset, note.n_descsz);
    offset = next;
  }
  return {};
}

std::string buildIdOf(Elf* elf) {
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) == 0) {
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr phdr;
      if (!gelf_getphdr(elf, static_cast<int>(i), &phdr) || phdr.p_type != PT_NOTE) continue;
      std::string id = buildIdFromNotes(
          elf_getdata_rawchunk(elf, static_cast<int64_t>(phdr.p_offset), phdr.p_filesz, ELF_T_NHDR));
      if (!id.empty()) return id;
    }
  }
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE) continue;
    std::string id = buildIdFromNotes(elf_getdata(scn, nullptr));
    if (!id.empty()) return id;
  }
  return {};
}

std::string readBuildId(const std::filesystem::path& path) {
  const UniqueFd fd = openRegular(path);
  return fd ? readBuildId(fd.get()) : std::string();
}

std::string readBuildId(int fd) {
  if (elf_version(EV_CURRENT) == EV_NONE) return {};
  const std::unique_ptr<Elf, decltype(&elf_end)> elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr), elf_end);
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) return {};
  return buildIdOf(elf.get());
}

}  // namespace heaptrail::common
