// RAII access to one ELF file through libelf, validated on open.
#pragma once

#include <gelf.h>
#include <libelf.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"

namespace heaptrail::symbols {

struct ElfDeleter {
  void operator()(Elf* elf) const { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfDeleter>;

struct LoadSegment {
  uint64_t offset = 0;
  uint64_t fileSize = 0;
  uint64_t vaddr = 0;
  uint64_t memSize = 0;
  uint32_t flags = 0;
};

// Maps file offsets to link-time virtual addresses through PT_LOAD headers.
class LoadLayout {
 public:
  LoadLayout() = default;
  explicit LoadLayout(std::vector<LoadSegment> segments);
  std::optional<uint64_t> toVaddr(uint64_t fileOffset) const;
  // True when some executable segment actually has bytes in the file (not a --only-keep-debug file).
  bool hasFileBackedCode() const;
  // Same virtual layout (vaddr, memsz, flags of every PT_LOAD); used to borrow file offsets from another build.
  bool sameVirtualLayout(const LoadLayout& other) const;
  std::span<const LoadSegment> segments() const { return segments_; }

 private:
  std::vector<LoadSegment> segments_;
};

// The bytes of one section: a view into the mapped file, or a decompressed copy when the
// section is SHF_COMPRESSED (zlib, as Debian's debug packages ship them).
class SectionContents {
 public:
  SectionContents() = default;
  explicit SectionContents(std::span<const uint8_t> view) : view_(view) {}
  // A buffer of `size` bytes the caller fills (not zeroed first: inflated sections are
  // megabytes).
  static SectionContents forOverwrite(size_t size) {
    SectionContents c;
    c.owned_ = std::make_unique_for_overwrite<uint8_t[]>(size);
    c.view_ = std::span<const uint8_t>(c.owned_.get(), size);
    return c;
  }
  uint8_t* writable() { return owned_.get(); }
  std::span<const uint8_t> bytes() const { return view_; }

 private:
  std::span<const uint8_t> view_;  // into the mapped file, or owned_
  std::unique_ptr<uint8_t[]> owned_;
};

struct DebugLink {
  std::string name;
  uint32_t crc = 0;
};

class ElfFile {
 public:
  enum class Error { None, Missing, NotElf };
  struct OpenResult {
    std::unique_ptr<ElfFile> file;
    Error error = Error::None;
    std::string reason;
  };
  // Never waits on a FIFO; a file that is not regular is Missing.
  static OpenResult open(const std::filesystem::path& path);
  // `fd` opened by the caller (FileAccess); `path` names it.
  static OpenResult open(common::UniqueFd fd, const std::filesystem::path& path);

  Elf* elf() const { return elf_.get(); }
  const std::filesystem::path& path() const { return path_; }
  // True when both are the same file (device and inode).
  bool sameFileAs(const ElfFile& other) const;
  int fd() const { return fd_.get(); }
  const std::string& buildId() const { return buildId_; }
  const LoadLayout& layout() const { return layout_; }
  const std::optional<DebugLink>& debugLink() const { return debugLink_; }
  bool hasSymtab() const { return symtab_ != nullptr; }
  bool hasDynsym() const { return dynsym_ != nullptr; }
  bool hasDwarf() const { return hasDwarf_; }  // .debug_line or .debug_info with bytes
  // False for --only-keep-debug files: their code sections are NOBITS and PT_LOADs have no file bytes.
  bool hasCodeBytes() const { return sectionCount_ > 0 ? hasCodeSection_ : layout_.hasFileBackedCode(); }
  Elf_Scn* symtab() const { return symtab_; }
  // Contents of the named section; nullopt if absent, empty (SHT_NOBITS) or undecodable
  // (`error` then says why).
  std::optional<SectionContents> section(std::string_view name, std::string& error) const;
  // The same by section index (what libdwarf asks for).
  std::optional<SectionContents> section(size_t index, std::string& error) const;
  // Bytes of a section once decompressed (its size when it is not compressed).
  std::optional<uint64_t> uncompressedSize(Elf_Scn* scn) const;
  Elf_Scn* dynsym() const { return dynsym_; }

 private:
  ElfFile() = default;
  bool index(std::string& reason);
  std::optional<SectionContents> contents(Elf_Scn* scn, std::string_view name, std::string& error) const;

  std::filesystem::path path_;
  common::UniqueFd fd_;
  ElfHandle elf_;  // declared after fd_: destroyed first
  std::string buildId_;
  LoadLayout layout_;
  std::optional<DebugLink> debugLink_;
  Elf_Scn* symtab_ = nullptr;
  Elf_Scn* dynsym_ = nullptr;
  bool hasDwarf_ = false;
  bool hasCodeSection_ = false;
  size_t sectionCount_ = 0;
};

}  // namespace heaptrail::symbols
