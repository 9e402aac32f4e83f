#include "analyzer/symbols/elf_file.h"

#include "common/build_id.h"
#include "common/safe_open.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include <libdeflate.h>
#include <zlib.h>

namespace heaptrail::symbols {

LoadLayout::LoadLayout(std::vector<LoadSegment> segments) : segments_(std::move(segments)) {
  std::sort(segments_.begin(), segments_.end(),
            [](const LoadSegment& a, const LoadSegment& b) { return a.offset < b.offset; });
}

std::optional<uint64_t> LoadLayout::toVaddr(uint64_t fileOffset) const {
  // Segments may share file pages (e.g. the RW segment starts in the page after text), so
  // only the exact [p_offset, p_offset + p_filesz) ranges count.
  for (const LoadSegment& s : segments_) {
    if (fileOffset >= s.offset && fileOffset - s.offset < s.fileSize) return fileOffset - s.offset + s.vaddr;
  }
  return std::nullopt;
}

bool LoadLayout::hasFileBackedCode() const {
  return std::any_of(segments_.begin(), segments_.end(),
                     [](const LoadSegment& s) { return (s.flags & PF_X) != 0 && s.fileSize > 0; });
}

bool LoadLayout::sameVirtualLayout(const LoadLayout& other) const {
  if (segments_.empty() || segments_.size() != other.segments_.size()) return false;
  auto byVaddr = [](std::vector<LoadSegment> v) {
    std::sort(v.begin(), v.end(), [](const LoadSegment& a, const LoadSegment& b) { return a.vaddr < b.vaddr; });
    return v;
  };
  auto a = byVaddr(segments_);
  auto b = byVaddr(other.segments_);
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].vaddr != b[i].vaddr || a[i].memSize != b[i].memSize || a[i].flags != b[i].flags) return false;
  }
  return true;
}

namespace {

void initLibelf() {
  static std::once_flag once;
  std::call_once(once, [] { elf_version(EV_CURRENT); });
}

bool rangeFits(uint64_t offset, uint64_t size, uint64_t fileSize) {
  return offset <= fileSize && size <= fileSize - offset;
}

}  // namespace

ElfFile::OpenResult ElfFile::open(const std::filesystem::path& path) {
  return open(common::openRegular(path), path);
}

ElfFile::OpenResult ElfFile::open(common::UniqueFd fd, const std::filesystem::path& path) {
  OpenResult result;
  if (!fd) {
    result.error = Error::Missing;
    result.reason = "cannot open " + path.string() + ": " + common::openErrorText(errno);
    return result;
  }
  initLibelf();
  std::unique_ptr<ElfFile> file(new ElfFile());
  file->path_ = path;
  file->fd_ = std::move(fd);
  file->elf_.reset(elf_begin(file->fd_.get(), ELF_C_READ_MMAP, nullptr));
  std::string reason;
  if (!file->elf_ || elf_kind(file->elf_.get()) != ELF_K_ELF) {
    result.error = Error::NotElf;
    result.reason = path.string() + " is not an ELF file";
    return result;
  }
  if (!file->index(reason)) {
    result.error = Error::NotElf;
    result.reason = path.string() + " is a truncated or corrupt ELF file: " + reason;
    return result;
  }
  result.file = std::move(file);
  return result;
}

// Validates every header against the real file size before anything else reads the file:
// libelf trusts the headers, and a truncated copy would otherwise fault in the mmap.
bool ElfFile::index(std::string& reason) {
  Elf* elf = elf_.get();
  struct stat st {};
  if (fstat(fd_.get(), &st) != 0) {
    reason = "fstat failed";
    return false;
  }
  const uint64_t fileSize = static_cast<uint64_t>(st.st_size);

  GElf_Ehdr ehdr;
  if (gelf_getehdr(elf, &ehdr) == nullptr) {
    reason = "unreadable ELF header";
    return false;
  }
  size_t phnum = 0;
  size_t shnum = 0;
  size_t shstrndx = 0;
  // libelf clamps the counts to what fits in the file, so check the header's own numbers.
  phnum = ehdr.e_phnum;
  if (phnum == PN_XNUM && elf_getphdrnum(elf, &phnum) != 0) {
    reason = "unreadable program header count";
    return false;
  }
  if (phnum > 0 && !rangeFits(ehdr.e_phoff, uint64_t{phnum} * ehdr.e_phentsize, fileSize)) {
    reason = "program headers beyond end of file";
    return false;
  }
  shnum = ehdr.e_shnum;
  if (shnum == 0 && ehdr.e_shoff != 0 && rangeFits(ehdr.e_shoff, ehdr.e_shentsize, fileSize) &&
      elf_getshdrnum(elf, &shnum) != 0) {
    reason = "unreadable section header count";
    return false;
  }
  size_t libelfShnum = 0;
  if (elf_getshdrnum(elf, &libelfShnum) != 0 || libelfShnum != shnum) {
    reason = "inconsistent section header count";
    return false;
  }
  if (shnum > 0 && !rangeFits(ehdr.e_shoff, uint64_t{shnum} * ehdr.e_shentsize, fileSize)) {
    reason = "section headers beyond end of file";
    return false;
  }
  if (shnum > 0 && elf_getshdrstrndx(elf, &shstrndx) != 0) {
    reason = "unreadable section name table index";
    return false;
  }

  std::vector<LoadSegment> segments;
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr phdr;
    if (gelf_getphdr(elf, static_cast<int>(i), &phdr) == nullptr) {
      reason = "unreadable program header " + std::to_string(i);
      return false;
    }
    if (phdr.p_type != PT_LOAD) continue;
    if (!rangeFits(phdr.p_offset, phdr.p_filesz, fileSize)) {
      reason = "PT_LOAD segment " + std::to_string(i) + " extends beyond end of file";
      return false;
    }
    segments.push_back({phdr.p_offset, phdr.p_filesz, phdr.p_vaddr, phdr.p_memsz, phdr.p_flags});
  }
  layout_ = LoadLayout(std::move(segments));

  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) {
      reason = "unreadable section header";
      return false;
    }
    if (shdr.sh_type != SHT_NOBITS && !rangeFits(shdr.sh_offset, shdr.sh_size, fileSize)) {
      reason = "section " + std::to_string(elf_ndxscn(scn)) + " extends beyond end of file";
      return false;
    }
    ++sectionCount_;
    if ((shdr.sh_flags & SHF_EXECINSTR) != 0 && (shdr.sh_flags & SHF_ALLOC) != 0 && shdr.sh_type != SHT_NOBITS &&
        shdr.sh_size > 0) {
      hasCodeSection_ = true;
    }
    const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
    std::string_view sname = name != nullptr ? name : "";
    if (shdr.sh_type == SHT_SYMTAB && shdr.sh_size > 0) {
      symtab_ = scn;
    } else if (shdr.sh_type == SHT_DYNSYM && shdr.sh_size > 0) {
      dynsym_ = scn;
    } else if ((sname == ".debug_line" || sname == ".debug_info") && shdr.sh_type != SHT_NOBITS && shdr.sh_size > 0) {
      hasDwarf_ = true;
    } else if (sname == ".gnu_debuglink" && shdr.sh_type != SHT_NOBITS) {
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (data != nullptr && data->d_buf != nullptr) {
        const char* p = static_cast<const char*>(data->d_buf);
        size_t nameLen = strnlen(p, data->d_size);
        size_t crcOffset = (nameLen + 4) & ~size_t{3};
        if (nameLen > 0 && nameLen < data->d_size && crcOffset + 4 <= data->d_size) {
          const auto* c = reinterpret_cast<const unsigned char*>(p + crcOffset);
          uint32_t crc = ehdr.e_ident[EI_DATA] == ELFDATA2MSB
                             ? (uint32_t{c[0]} << 24 | uint32_t{c[1]} << 16 | uint32_t{c[2]} << 8 | c[3])
                             : (uint32_t{c[3]} << 24 | uint32_t{c[2]} << 16 | uint32_t{c[1]} << 8 | c[0]);
          debugLink_ = DebugLink{std::string(p, nameLen), crc};
        }
      }
    }
  }
  // Every header was checked against the file size above: the notes can be read safely.
  buildId_ = common::buildIdOf(elf);
  return true;
}

}  // namespace heaptrail::symbols

namespace heaptrail::symbols {

std::optional<SectionContents> ElfFile::section(std::string_view name, std::string& error) const {
  Elf* elf = elf_.get();
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0) return std::nullopt;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    const char* sectionName = elf_strptr(elf, shstrndx, shdr.sh_name);
    if (sectionName == nullptr || name != sectionName) continue;
    return contents(scn, name, error);
  }
  return std::nullopt;
}

std::optional<SectionContents> ElfFile::section(size_t index, std::string& error) const {
  Elf_Scn* scn = elf_getscn(elf_.get(), index);
  if (scn == nullptr) return std::nullopt;
  return contents(scn, "section " + std::to_string(index), error);
}

std::optional<uint64_t> ElfFile::uncompressedSize(Elf_Scn* scn) const {
  GElf_Shdr shdr;
  if (gelf_getshdr(scn, &shdr) == nullptr) return std::nullopt;
  if (shdr.sh_type == SHT_NOBITS) return 0;
  if ((shdr.sh_flags & SHF_COMPRESSED) == 0) return shdr.sh_size;
  GElf_Chdr chdr;
  if (gelf_getchdr(scn, &chdr) == nullptr) return std::nullopt;
  return chdr.ch_size;
}

std::optional<SectionContents> ElfFile::contents(Elf_Scn* scn, std::string_view name, std::string& error) const {
  Elf* elf = elf_.get();
  GElf_Shdr shdr;
  if (gelf_getshdr(scn, &shdr) == nullptr) return std::nullopt;
  if (shdr.sh_type == SHT_NOBITS || shdr.sh_size == 0) return std::nullopt;
  Elf_Data* data = elf_rawdata(scn, nullptr);
  if (data == nullptr || data->d_buf == nullptr) {
    error = std::string(name) + " of " + path_.string() + " is unreadable";
    return std::nullopt;
  }
  const std::span<const uint8_t> raw(static_cast<const uint8_t*>(data->d_buf), data->d_size);
  if ((shdr.sh_flags & SHF_COMPRESSED) == 0) return SectionContents(raw);

  GElf_Chdr chdr;
  const size_t headerSize = gelf_getclass(elf) == ELFCLASS32 ? sizeof(Elf32_Chdr) : sizeof(Elf64_Chdr);
  if (gelf_getchdr(scn, &chdr) == nullptr || raw.size() < headerSize) {
    error = std::string(name) + " of " + path_.string() + " has a bad compression header";
    return std::nullopt;
  }
  if (chdr.ch_type != ELFCOMPRESS_ZLIB) {
    error = std::string(name) + " of " + path_.string() + " uses compression type " +
            std::to_string(chdr.ch_type) + " (only zlib is supported)";
    return std::nullopt;
  }
  // Bound the allocation by what zlib can produce from the input (1032:1 at most).
  if (chdr.ch_size / 1032 > raw.size()) {
    error = std::string(name) + " of " + path_.string() + " claims an impossible uncompressed size";
    return std::nullopt;
  }
  // libdeflate inflates a whole buffer 2-3x faster than zlib: the debug sections of a
  // distribution's debug package (libc6-dbg: 9 MB) were most of a small trace's analysis.
  SectionContents out = SectionContents::forOverwrite(chdr.ch_size);
  static thread_local const std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> inflater(
      libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
  size_t produced = 0;
  if (inflater == nullptr ||
      libdeflate_zlib_decompress(inflater.get(), raw.data() + headerSize, raw.size() - headerSize, out.writable(),
                                 chdr.ch_size, &produced) != LIBDEFLATE_SUCCESS ||
      produced != chdr.ch_size) {
    error = std::string(name) + " of " + path_.string() + " does not decompress";
    return std::nullopt;
  }
  return out;
}

bool ElfFile::sameFileAs(const ElfFile& other) const {
  struct stat a {}, b {};
  return ::fstat(fd_.get(), &a) == 0 && ::fstat(other.fd_.get(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

}  // namespace heaptrail::symbols
