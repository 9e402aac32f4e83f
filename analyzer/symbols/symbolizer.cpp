#include "analyzer/symbols/symbolizer.h"

#include <optional>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "analyzer/symbols/debug_file_locator.h"
#include "analyzer/symbols/debuginfod_client.h"
#include "analyzer/symbols/dwarf_info.h"
#include "analyzer/symbols/elf_file.h"
#include "analyzer/symbols/file_access.h"
#include "analyzer/symbols/symbol_table.h"
#include "common/hex.h"

namespace heaptrail::symbols {

namespace fs = std::filesystem;

namespace {

struct Module {
  FrameStatus failure = FrameStatus::Resolved;  // anything else: every lookup in the module fails this way
  std::string reason;
  LoadLayout layout;
  std::string layoutFile;
  // The image's own symbol table (.symtab, else .dynsym): like llvm-symbolizer, it names the
  // function the code belongs to where one of its symbols covers the address.
  SymbolTable imageSymbols;
  std::string imageSymbolsFile;
  // Fallbacks where neither the image's table nor the DWARF names the function.
  SymbolTable debugSymtab;
  std::string debugSymtabFile;
  SymbolTable dynsym;
  std::string dynsymFile;
  fs::path dwarfFile;
  bool dwarfOpened = false;
  std::unique_ptr<DwarfInfo> dwarf;
  std::string dwarfError;
};

// Cache key (path, recorded build-id); lookups go through string_views so a hit allocates nothing.
using ModuleKey = std::pair<std::string, std::string>;
using ModuleKeyView = std::pair<std::string_view, std::string_view>;

struct ModuleKeyHash {
  using is_transparent = void;
  std::size_t operator()(const ModuleKeyView& k) const noexcept {
    const std::size_t h = std::hash<std::string_view>{}(k.first);
    return h ^ (std::hash<std::string_view>{}(k.second) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
  std::size_t operator()(const ModuleKey& k) const noexcept { return (*this)(ModuleKeyView(k.first, k.second)); }
};

struct ModuleKeyEqual {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const noexcept {
    return std::string_view(a.first) == std::string_view(b.first) &&
           std::string_view(a.second) == std::string_view(b.second);
  }
};

}  // namespace

struct Symbolizer::Impl {
  explicit Impl(SymbolizerOptions opts)
      : options(std::move(opts)), access(options.sysroot), locator(searchDirs(options, access)) {
    if (options.debuginfod) debuginfod = DebuginfodClient::fromEnvironment(&debuginfodError);
  }

  static std::vector<fs::path> searchDirs(const SymbolizerOptions& o, const FileAccess& access) {
    // The user's own dirs, normalized: one under the sysroot is confined to it like the
    // sysroot's own, and "rootfs/../symbols" is not mistaken for one.
    std::vector<fs::path> dirs;
    for (const auto& d : o.debugDirs) {
      std::error_code ec;
      const fs::path absolute = fs::absolute(d, ec);
      dirs.push_back((ec ? d : absolute).lexically_normal());
    }
    if (o.systemDebugDir) {
      if (!o.sysroot.empty()) dirs.push_back(access.hostPath("/usr/lib/debug"));
      dirs.emplace_back("/usr/lib/debug");
    }
    return dirs;
  }

  fs::path hostPath(const fs::path& recorded) const { return access.hostPath(recorded); }

  // Every file is opened through `access`: confined to the sysroot, never a FIFO.
  ElfFile::OpenResult openElf(const fs::path& path) {
    auto result = ElfFile::open(access.open(path), path);
    if (result.error != ElfFile::Error::Missing) ++stats.elfOpens;
    return result;
  }

  std::unique_ptr<ElfFile> openWithBuildId(const fs::path& path, const std::string& buildId) {
    auto result = openElf(path);
    if (!result.file || result.file->buildId() != buildId) return nullptr;
    return std::move(result.file);
  }

  std::unique_ptr<ElfFile> findDebugFile(const ElfFile& image, const std::string& buildId, const fs::path& recorded) {
    if (!buildId.empty()) {
      for (const auto& candidate : locator.debugFilesByBuildId(buildId)) {
        if (auto f = openWithBuildId(candidate, buildId)) return f;
      }
    }
    if (const auto& link = image.debugLink()) {
      for (const auto& candidate : locator.debugFilesByDebugLink(image.path(), recorded, link->name)) {
        auto result = openElf(candidate);
        if (!result.file || result.file->sameFileAs(image)) continue;
        const std::string& id = result.file->buildId();
        bool matches = !buildId.empty() && !id.empty() ? id == buildId : fileCrc32(result.file->fd()) == link->crc;
        if (matches) return std::move(result.file);
      }
    }
    return fetch(DebuginfodClient::Artifact::DebugInfo, buildId);
  }

  // Last resort, after every local candidate: the debuginfod servers, by build-id.
  std::unique_ptr<ElfFile> fetch(DebuginfodClient::Artifact what, const std::string& buildId) {
    if (!debuginfod || buildId.empty()) return nullptr;
    auto found = debuginfod->find(what, buildId);
    if (!found) return nullptr;
    auto result = ElfFile::open(std::move(found->fd), found->path);
    if (!result.file || result.file->buildId() != buildId) return nullptr;
    ++stats.debuginfodFiles;
    return std::move(result.file);
  }

  void indexImage(Module& mod, const ElfFile& image, const std::string& buildId, const fs::path& recorded) {
    mod.failure = FrameStatus::Resolved;
    mod.reason.clear();
    mod.layout = image.layout();
    mod.layoutFile = image.path().string();
    if (image.hasSymtab()) {
      mod.imageSymbols = SymbolTable::build(image, SymbolTable::Source::Symtab);
      mod.imageSymbolsFile = image.path().string();
    } else if (image.hasDynsym()) {
      mod.imageSymbols = SymbolTable::build(image, SymbolTable::Source::Dynsym);
      mod.imageSymbolsFile = image.path().string();
    }
    if (image.hasSymtab() && image.hasDynsym()) {
      mod.dynsym = SymbolTable::build(image, SymbolTable::Source::Dynsym);
      mod.dynsymFile = image.path().string();
    }
    if (image.hasDwarf()) mod.dwarfFile = image.path();
    if (image.hasSymtab() && image.hasDwarf()) return;
    auto debug = findDebugFile(image, buildId, recorded);
    if (!debug) return;
    if (!image.hasSymtab() && debug->hasSymtab()) {
      mod.debugSymtab = SymbolTable::build(*debug, SymbolTable::Source::Symtab);
      mod.debugSymtabFile = debug->path().string();
    }
    if (mod.dwarfFile.empty() && debug->hasDwarf()) mod.dwarfFile = debug->path();
  }

  std::unique_ptr<Module> load(const ModuleRef& ref) {
    auto mod = std::make_unique<Module>();
    const fs::path recorded(ref.path);
    const fs::path host = hostPath(recorded);
    const std::string& wanted = ref.buildId;

    auto bin = openElf(host);
    if (bin.file) {
      const std::string& have = bin.file->buildId();
      if (wanted.empty() || have.empty() || have == wanted) {
        indexImage(*mod, *bin.file, wanted.empty() ? have : wanted, recorded);
        return mod;
      }
      mod->failure = FrameStatus::BuildIdMismatch;
      mod->reason = "build-id mismatch: " + host.string() + " has " + common::hexBytes(have) + ", trace has " +
                    common::hexBytes(wanted);
    } else {
      mod->failure = bin.error == ElfFile::Error::Missing ? FrameStatus::FileMissing : FrameStatus::NotElf;
      mod->reason = bin.reason;
    }
    if (wanted.empty()) return mod;

    // The right build may still be in a debug dir: first a full binary, then a separate debug file.
    for (const auto& candidate : locator.binariesByBuildId(wanted)) {
      auto f = openWithBuildId(candidate, wanted);
      if (f && f->hasCodeBytes()) {
        indexImage(*mod, *f, wanted, recorded);
        return mod;
      }
    }
    if (auto f = fetch(DebuginfodClient::Artifact::Executable, wanted); f && f->hasCodeBytes()) {
      indexImage(*mod, *f, wanted, recorded);
      return mod;
    }
    for (const auto& candidate : locator.debugFilesByBuildId(wanted)) {
      auto f = openWithBuildId(candidate, wanted);
      if (!f) continue;
      if (f->hasCodeBytes()) {  // an unstripped copy stored under the .debug name
        indexImage(*mod, *f, wanted, recorded);
        return mod;
      }
      // An --only-keep-debug file has no file offsets (p_filesz == 0). Borrow them from the mismatching
      // binary only when its virtual layout is identical, i.e. the same link with another build-id.
      if (bin.file && f->hasSymtab() && f->layout().sameVirtualLayout(bin.file->layout())) {
        mod->failure = FrameStatus::Resolved;
        mod->reason.clear();
        mod->layout = bin.file->layout();
        mod->layoutFile = bin.file->path().string();
        mod->imageSymbols = SymbolTable::build(*f, SymbolTable::Source::Symtab);
        mod->imageSymbolsFile = f->path().string();
        if (f->hasDwarf()) mod->dwarfFile = f->path();
        return mod;
      }
      mod->reason += "; debug file " + f->path().string() +
                     " matches the trace build-id but cannot map file offsets without the matching binary";
      break;
    }
    if (debuginfod && !debuginfod->lastError().empty()) mod->reason += "; " + debuginfod->lastError();
    if (!debuginfodError.empty()) mod->reason += "; " + debuginfodError;
    return mod;
  }

  Module& module(const ModuleRef& ref) {
    auto it = modules.find(ModuleKeyView(ref.path, ref.buildId));
    if (it == modules.end()) {
      it = modules.emplace(ModuleKey(ref.path, ref.buildId), load(ref)).first;
      ++stats.modulesIndexed;
    }
    return *it->second;
  }

  DwarfInfo* dwarf(Module& mod) {
    if (!mod.dwarfOpened && !mod.dwarfFile.empty()) {
      mod.dwarfOpened = true;
      ++stats.dwarfLoads;
      mod.dwarf = DwarfInfo::open(access.open(mod.dwarfFile), mod.dwarfFile, mod.dwarfError);
    }
    return mod.dwarf.get();
  }

  SymbolizerOptions options;
  FileAccess access;
  DebugFileLocator locator;
  std::unique_ptr<DebuginfodClient> debuginfod;
  std::string debuginfodError;  // why there is no client although servers are configured
  SymbolizerStats stats;
  std::unordered_map<ModuleKey, std::unique_ptr<Module>, ModuleKeyHash, ModuleKeyEqual> modules;
};

Symbolizer::Symbolizer(SymbolizerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Symbolizer::~Symbolizer() = default;
Symbolizer::Symbolizer(Symbolizer&&) noexcept = default;
Symbolizer& Symbolizer::operator=(Symbolizer&&) noexcept = default;

SymbolizerStats Symbolizer::stats() const {
  SymbolizerStats stats = impl_->stats;
  for (const auto& [key, mod] : impl_->modules)
    if (mod->dwarf) {
      stats.dwarfUnits += mod->dwarf->unitCount();
      stats.dwarfUnitsRead += mod->dwarf->unitsLoaded();
    }
  return stats;
}

SymbolizedFrame Symbolizer::resolve(const ModuleRef& ref, uint64_t fileOffset) {
  SymbolizedFrame result;
  Module& mod = impl_->module(ref);
  if (mod.failure != FrameStatus::Resolved) {
    result.status = mod.failure;
    result.reason = mod.reason;
    return result;
  }
  const auto vaddr = mod.layout.toVaddr(fileOffset);
  if (!vaddr) {
    result.status = FrameStatus::OutsideImage;
    result.reason = "file offset " + common::hexNumber(fileOffset) + " is outside every PT_LOAD segment of " + mod.layoutFile;
    return result;
  }

  // Like llvm-symbolizer: the image's own symbol table names the function the code belongs
  // to where it covers the address, else the DWARF, else any other symbol table.
  using Match = SymbolTable::Match;
  std::string_view imageSourceFile;
  const std::string* imageName = mod.imageSymbols.lookup(*vaddr, Match::Containing, &imageSourceFile);
  if (DwarfInfo* dwarf = impl_->dwarf(mod)) result.frames = dwarf->lookup(*vaddr, imageName == nullptr);
  const bool fromDwarf = !result.frames.empty();
  if (!fromDwarf) result.frames.emplace_back();
  SourceFrame& outer = result.frames.back();
  result.usedFile = fromDwarf ? mod.dwarfFile.string() : std::string();

  const std::string* nameFile = nullptr;
  if (imageName != nullptr) {
    outer.function = *imageName;
    nameFile = &mod.imageSymbolsFile;
    if (outer.file.empty()) outer.file = imageSourceFile;  // a local function the DWARF does not cover
  } else if (outer.function.empty()) {
    const std::pair<const SymbolTable*, const std::string*> tables[] = {
        {&mod.imageSymbols, &mod.imageSymbolsFile}, {&mod.debugSymtab, &mod.debugSymtabFile}, {&mod.dynsym, &mod.dynsymFile}};
    for (Match match : {Match::Containing, Match::NearestPreceding}) {
      for (const auto& [table, file] : tables) {
        if (const std::string* name = table->lookup(*vaddr, match)) {
          outer.function = *name;
          nameFile = file;
          break;
        }
      }
      if (nameFile != nullptr) break;
    }
  }
  if (!fromDwarf && nameFile != nullptr) result.usedFile = *nameFile;

  if (!fromDwarf && outer.function.empty()) {
    result.frames.clear();
    result.status = FrameStatus::NoSymbols;
    result.usedFile = mod.layoutFile;
    result.reason = "no symbol or line information for address " + common::hexNumber(*vaddr) + " (file offset " +
                    common::hexNumber(fileOffset) + ") in " + mod.layoutFile;
    if (!mod.dwarfError.empty()) result.reason += " (" + mod.dwarfError + ")";
    return result;
  }
  result.status = FrameStatus::Resolved;
  return result;
}

}  // namespace heaptrail::symbols
