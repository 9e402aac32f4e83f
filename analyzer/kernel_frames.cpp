#include "analyzer/kernel_frames.h"

#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "analyzer/symbols/debuginfod_client.h"
#include "common/build_id.h"
#include "common/hex.h"
#include "schema/record_readers.h"

namespace heaptrail::analyzer {
namespace {

// No kernel function is this long: an address this far past a symbol is not in it.
constexpr uint64_t kMaxSymbolBytes = 1ull << 20;

bool is64Bit(const std::string& machine) {
  return !(machine.rfind("arm", 0) == 0 || machine == "i386" || machine == "i686" || machine.empty());
}

struct ElfFile {
  int fd = -1;
  Elf* elf = nullptr;
  explicit ElfFile(const std::filesystem::path& path) {
    if (elf_version(EV_CURRENT) == EV_NONE) return;
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) elf = elf_begin(fd, ELF_C_READ, nullptr);
  }
  ~ElfFile() {
    if (elf) elf_end(elf);
    if (fd >= 0) ::close(fd);
  }
};

// The address of `_text` in an ELF's symbol table, 0 if absent.
uint64_t textSymbol(Elf* elf) {
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_SYMTAB) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || shdr.sh_entsize == 0) continue;
    const size_t count = shdr.sh_size / shdr.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
      const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
      if (name && std::strcmp(name, "_text") == 0) return sym.st_value;
    }
  }
  return 0;
}

}  // namespace

std::unique_ptr<KernelFrames> KernelFrames::fromHeader(schema::Header::Reader header, const KernelFrameOptions& options) {
  if (!header.hasKernel()) return nullptr;
  std::unique_ptr<KernelFrames> k(new KernelFrames());
  const auto info = header.getKernel();
  if (!is64Bit(header.getMachine())) k->kernelSpaceStart_ = 0xc0000000ull;
  const auto id = info.getBuildId();
  k->buildId_.assign(reinterpret_cast<const char*>(id.begin()), id.size());
  k->textStart_ = info.getTextStart();
  const auto symbols = info.getSymbols();
  const auto addresses = symbols.getAddress();
  const auto modules = symbols.getModule();
  const auto names = symbols.getNames();
  k->names_.assign(reinterpret_cast<const char*>(names.begin()), names.size());
  k->names_.push_back('\0');
  size_t offset = 0;
  for (unsigned i = 0; i < addresses.size() && offset < k->names_.size(); ++i) {
    // Damaged files may be unsorted: keep only what keeps the table sorted.
    if (!k->addresses_.empty() && addresses[i] < k->addresses_.back()) break;
    k->addresses_.push_back(addresses[i]);
    k->modules_.push_back(i < modules.size() ? modules[i] : 0);
    k->nameOffsets_.push_back(static_cast<uint32_t>(offset));
    offset += std::strlen(k->names_.c_str() + offset) + 1;
  }
  for (auto m : info.getModules()) {
    const auto mid = m.getBuildId();
    k->moduleList_.push_back({schema::boundedText(m.getName()), m.getBase(), m.getSize(),
                              std::string(reinterpret_cast<const char*>(mid.begin()), mid.size())});
  }
  if (info.getSymbolsHidden())
    k->notes_.push_back("kernel symbols were hidden when recording (kptr_restrict=" +
                        std::to_string(info.getKptrRestrict()) +
                        "): kernel frames print as addresses; record as root with kernel.kptr_restrict=0 or 1");
  k->findVmlinux(options, info.getRelease());
  return k;
}

void KernelFrames::findVmlinux(const KernelFrameOptions& options, const std::string& release) {
  std::vector<std::filesystem::path> candidates;
  const bool explicitPath = !options.vmlinux.empty();
  if (explicitPath) {
    candidates.push_back(options.vmlinux);
  } else if (!buildId_.empty()) {
    const std::string hex = common::hexBytes(buildId_);
    std::vector<std::filesystem::path> dirs = options.debugDirs;
    if (options.systemDirs) {
      if (!options.sysroot.empty()) dirs.push_back(options.sysroot / "usr/lib/debug");
      dirs.emplace_back("/usr/lib/debug");
    }
    for (const auto& d : dirs) {
      candidates.push_back(d / ".build-id" / hex.substr(0, 2) / (hex.substr(2) + ".debug"));
      candidates.push_back(d / "boot" / ("vmlinux-" + release));
      candidates.push_back(d / "lib/modules" / release / "vmlinux");
    }
    if (options.systemDirs) {
      const std::filesystem::path root = options.sysroot.empty() ? "/" : options.sysroot;
      candidates.push_back(root / "boot" / ("vmlinux-" + release));
      candidates.push_back(root / "lib/modules" / release / "build/vmlinux");
    }
  }
  if (!explicitPath && !buildId_.empty() && options.debuginfod) {
    // Last: the debuginfod servers (Debian's serves its kernels' vmlinux by build-id).
    if (auto client = symbols::DebuginfodClient::fromEnvironment()) {
      if (auto found = client->find(symbols::DebuginfodClient::Artifact::DebugInfo, buildId_))
        candidates.push_back(found->path);
      else
        notes_.push_back(client->lastError());
    }
  }
  for (const auto& path : candidates) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      if (explicitPath) notes_.push_back("--vmlinux " + path.string() + ": no such file: kernel frames without file:line");
      continue;
    }
    const std::string id = common::readBuildId(path);
    if (!buildId_.empty() && id != buildId_) {
      if (explicitPath)
        notes_.push_back("--vmlinux " + path.string() + " has build-id " + (id.empty() ? "none" : common::hexBytes(id)) +
                         ", the recorded kernel " + common::hexBytes(buildId_) + ": not used");
      continue;
    }
    ElfFile file(path);
    if (!file.elf) continue;
    size_t phnum = 0;
    if (elf_getphdrnum(file.elf, &phnum) != 0) continue;
    std::vector<Segment> segments;
    uint64_t firstExec = 0;
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr ph;
      if (!gelf_getphdr(file.elf, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
      segments.push_back({ph.p_vaddr, ph.p_filesz, ph.p_offset});
      if ((ph.p_flags & PF_X) && firstExec == 0) firstExec = ph.p_vaddr;
    }
    uint64_t text = textSymbol(file.elf);
    if (text == 0) text = firstExec;
    if (segments.empty() || text == 0) continue;
    vmlinuxPath_ = path;
    segments_ = std::move(segments);
    kaslrOffset_ = textStart_ ? static_cast<int64_t>(textStart_ - text) : 0;
    return;
  }
  if (!explicitPath && !buildId_.empty() && !addresses_.empty())
    notes_.push_back("no vmlinux with the recorded kernel's build-id " + common::hexBytes(buildId_) +
                     " was found (give one with --vmlinux, or put it under a --debug-dir): kernel frames show "
                     "functions without file:line");
}

long KernelFrames::symbolAt(uint64_t address) const {
  const auto it = std::upper_bound(addresses_.begin(), addresses_.end(), address);
  if (it == addresses_.begin()) return -1;
  const long i = static_cast<long>(std::distance(addresses_.begin(), it)) - 1;
  // Kallsyms has no sizes: an address far past a symbol (past the last, or in the gap
  // between the kernel's text and a later module, where BPF programs are) is in none.
  if (address - addresses_[i] > kMaxSymbolBytes) return -1;
  return i;
}

size_t KernelFrames::machineryFrames(std::span<const uint64_t> frames) const {
  size_t n = 0;
  for (; n < frames.size() && isKernelAddress(frames[n]); ++n) {
    const long i = symbolAt(frames[n] - 1);
    // BPF programs are loaded after the snapshot: outside every symbol, or in the last.
    if (i < 0 || static_cast<size_t>(i) + 1 == addresses_.size()) continue;
    const std::string_view name = names_.c_str() + nameOffsets_[i];
    if (name.starts_with("bpf_trace_run") || name.starts_with("__bpf_trace_") || name.starts_with("__traceiter_") ||
        name.starts_with("bpf_prog_") || name.starts_with("__bpf_prog_enter"))
      continue;
    break;
  }
  return n == frames.size() ? 0 : n;
}

Frame KernelFrames::resolve(uint64_t address, const FrameResolver& resolver) const {
  Frame f;
  f.address = address;
  const uint64_t lookup = address == 0 ? 0 : address - 1;
  const long i = symbolAt(lookup);
  const uint16_t module = i >= 0 ? modules_[i] : 0;
  f.mapped = true;
  f.symbolized = true;
  if (module > 0 && module <= moduleList_.size()) {
    const Module& m = moduleList_[module - 1];
    f.module = "[" + m.name + "]";
    f.buildId = m.buildId;
    f.offset = address - m.base;
  } else {
    f.module = "[kernel.kallsyms]";
    f.buildId = buildId_;
    f.offset = textStart_ && address >= textStart_ ? address - textStart_ : address;
  }
  if (i < 0) {
    f.symbol.status = symbols::FrameStatus::NoSymbols;
    f.symbol.reason = addresses_.empty() ? "no kernel symbols in the trace" : "outside the kernel's symbols";
    return f;
  }
  f.symbol.status = symbols::FrameStatus::Resolved;
  f.symbol.frames = {symbols::SourceFrame{names_.c_str() + nameOffsets_[i], "", 0}};
  if (module != 0 || !resolver || vmlinuxPath_.empty()) return f;
  const uint64_t vaddr = lookup - static_cast<uint64_t>(kaslrOffset_);
  for (const auto& s : segments_) {
    if (vaddr < s.vaddr || vaddr - s.vaddr >= s.size) continue;
    // The vmlinux's DWARF: file:line, and the calls inlined at this address.
    auto lines = resolver(symbols::ModuleRef{vmlinuxPath_.string(), buildId_}, s.offset + (vaddr - s.vaddr));
    if (lines.resolved() && !lines.frames.empty() && !lines.outermost().file.empty()) f.symbol = std::move(lines);
    break;
  }
  return f;
}

}  // namespace heaptrail::analyzer
