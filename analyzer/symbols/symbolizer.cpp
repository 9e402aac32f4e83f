#include "symbolizer.h"

#include <cstdio>
#include <optional>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "debug_file_locator.h"
#include "elf_file.h"
#include "line_table.h"
#include "symbol_table.h"

namespace heaptrail::symbols {

namespace fs = std::filesystem;

std::string_view toString(FrameStatus status) {
  switch (status) {
    case FrameStatus::Resolved: return "Resolved";
    case FrameStatus::FileMissing: return "FileMissing";
    case FrameStatus::BuildIdMismatch: return "BuildIdMismatch";
    case FrameStatus::NotElf: return "NotElf";
    case FrameStatus::NoSymbols: return "NoSymbols";
    case FrameStatus::OutsideImage: return "OutsideImage";
  }
  return "Unknown";
}

std::string buildIdToHex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 0xF]);
  }
  return hex;
}

std::string buildIdFromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return {};
  std::string raw;
  raw.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    raw.push_back(static_cast<char>(hi << 4 | lo));
  }
  return raw;
}

std::string readBuildId(const fs::path& path) noexcept {
  try {
    auto result = ElfFile::open(path);
    return result.file ? result.file->buildId() : std::string();
  } catch (...) {
    return {};
  }
}

namespace {

std::string hexOffset(uint64_t value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

bool samePath(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

struct Module {
  FrameStatus failure = FrameStatus::Resolved;  // anything else: every lookup in the module fails this way
  std::string reason;
  LoadLayout layout;
  std::string layoutFile;
  SymbolTable symtab;
  std::string symtabFile;
  SymbolTable dynsym;
  std::string dynsymFile;
  fs::path dwarfFile;
  bool linesLoaded = false;
  std::optional<LineTable> lines;
  std::string linesError;
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
  explicit Impl(SymbolizerOptions opts) : options(std::move(opts)), locator(searchDirs(options)) {}

  static std::vector<fs::path> searchDirs(const SymbolizerOptions& o) {
    std::vector<fs::path> dirs = o.debugDirs;
    if (o.systemDebugDir) {
      if (!o.sysroot.empty()) dirs.push_back(o.sysroot / "usr/lib/debug");
      dirs.emplace_back("/usr/lib/debug");
    }
    return dirs;
  }

  fs::path hostPath(const fs::path& recorded) const {
    return options.sysroot.empty() ? recorded : options.sysroot / recorded.relative_path();
  }

  ElfFile::OpenResult openElf(const fs::path& path) {
    auto result = ElfFile::open(path);
    if (result.error != ElfFile::Error::Missing) ++stats.elfOpens;
    return result;
  }

  std::unique_ptr<ElfFile> openWithBuildId(const fs::path& path, const std::string& buildId) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return nullptr;
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
    const auto& link = image.debugLink();
    if (!link) return nullptr;
    for (const auto& candidate : locator.debugFilesByDebugLink(image.path(), recorded, link->name)) {
      std::error_code ec;
      if (!fs::is_regular_file(candidate, ec) || samePath(candidate, image.path())) continue;
      auto result = openElf(candidate);
      if (!result.file) continue;
      const std::string& id = result.file->buildId();
      bool matches = !buildId.empty() && !id.empty() ? id == buildId : fileCrc32(candidate) == link->crc;
      if (matches) return std::move(result.file);
    }
    return nullptr;
  }

  void indexImage(Module& mod, const ElfFile& image, const std::string& buildId, const fs::path& recorded) {
    mod.failure = FrameStatus::Resolved;
    mod.reason.clear();
    mod.layout = image.layout();
    mod.layoutFile = image.path().string();
    if (image.hasSymtab()) {
      mod.symtab = SymbolTable::build(image, SymbolTable::Source::Symtab);
      mod.symtabFile = image.path().string();
    }
    if (image.hasDynsym()) {
      mod.dynsym = SymbolTable::build(image, SymbolTable::Source::Dynsym);
      mod.dynsymFile = image.path().string();
    }
    if (image.hasDwarfLines()) mod.dwarfFile = image.path();
    if (image.hasSymtab() && image.hasDwarfLines()) return;
    auto debug = findDebugFile(image, buildId, recorded);
    if (!debug) return;
    if (mod.symtab.empty() && debug->hasSymtab()) {
      mod.symtab = SymbolTable::build(*debug, SymbolTable::Source::Symtab);
      mod.symtabFile = debug->path().string();
    }
    if (mod.dwarfFile.empty() && debug->hasDwarfLines()) mod.dwarfFile = debug->path();
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
      mod->reason = "build-id mismatch: " + host.string() + " has " + buildIdToHex(have) + ", trace has " +
                    buildIdToHex(wanted);
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
        mod->symtab = SymbolTable::build(*f, SymbolTable::Source::Symtab);
        mod->symtabFile = f->path().string();
        if (f->hasDwarfLines()) mod->dwarfFile = f->path();
        return mod;
      }
      mod->reason += "; debug file " + f->path().string() +
                     " matches the trace build-id but cannot map file offsets without the matching binary";
      break;
    }
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

  const LineTable* lines(Module& mod) {
    if (!mod.linesLoaded && !mod.dwarfFile.empty()) {
      mod.linesLoaded = true;
      ++stats.dwarfLoads;
      mod.lines = LineTable::load(mod.dwarfFile, mod.linesError);
    }
    return mod.lines ? &*mod.lines : nullptr;
  }

  SymbolizerOptions options;
  DebugFileLocator locator;
  SymbolizerStats stats;
  std::unordered_map<ModuleKey, std::unique_ptr<Module>, ModuleKeyHash, ModuleKeyEqual> modules;
};

Symbolizer::Symbolizer(SymbolizerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Symbolizer::~Symbolizer() = default;
Symbolizer::Symbolizer(Symbolizer&&) noexcept = default;
Symbolizer& Symbolizer::operator=(Symbolizer&&) noexcept = default;

const SymbolizerStats& Symbolizer::stats() const { return impl_->stats; }

ResolvedFrame Symbolizer::resolve(const ModuleRef& ref, uint64_t fileOffset) {
  ResolvedFrame frame;
  Module& mod = impl_->module(ref);
  if (mod.failure != FrameStatus::Resolved) {
    frame.status = mod.failure;
    frame.reason = mod.reason;
    return frame;
  }
  const auto vaddr = mod.layout.toVaddr(fileOffset);
  if (!vaddr) {
    frame.status = FrameStatus::OutsideImage;
    frame.reason = "file offset " + hexOffset(fileOffset) + " is outside every PT_LOAD segment of " + mod.layoutFile;
    return frame;
  }

  using Match = SymbolTable::Match;
  const std::string* name = nullptr;
  const std::string* nameFile = nullptr;
  for (Match match : {Match::Containing, Match::NearestPreceding}) {
    if ((name = mod.symtab.lookup(*vaddr, match)) != nullptr) {
      nameFile = &mod.symtabFile;
      break;
    }
    if ((name = mod.dynsym.lookup(*vaddr, match)) != nullptr) {
      nameFile = &mod.dynsymFile;
      break;
    }
  }
  if (name != nullptr) {
    frame.function = *name;
    frame.usedFile = *nameFile;
  }
  if (const LineTable* table = impl_->lines(mod)) {
    if (auto hit = table->lookup(*vaddr)) {
      frame.file = *hit->file;
      frame.line = hit->line;
      frame.usedFile = mod.dwarfFile.string();
    }
  }
  if (frame.function.empty() && frame.line == 0) {
    frame.status = FrameStatus::NoSymbols;
    frame.usedFile = mod.layoutFile;
    frame.reason = "no symbol or line information for address " + hexOffset(*vaddr) + " (file offset " +
                   hexOffset(fileOffset) + ") in " + mod.layoutFile;
    if (!mod.linesError.empty()) frame.reason += " (" + mod.linesError + ")";
    return frame;
  }
  frame.status = FrameStatus::Resolved;
  return frame;
}

}  // namespace heaptrail::symbols
