#include "recorder/kernel_snapshot.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

namespace heaptrail::recorder {
namespace {

constexpr uint32_t kNoteGnuBuildId = 3;  // NT_GNU_BUILD_ID

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

uint32_t readU32(const std::string& bytes, size_t offset) {
  uint32_t v = 0;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}

size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

// Function symbols: t/T (text) and w/W (weak, in kallsyms functions).
bool isTextSymbol(char type) { return type == 't' || type == 'T' || type == 'w' || type == 'W'; }

struct RawSymbol {
  uint64_t address;
  uint16_t module;
  std::string name;
};

}  // namespace

std::string buildIdFromKernelNotes(const std::string& notes) {
  size_t offset = 0;
  while (offset + 12 <= notes.size()) {
    const uint32_t nameSize = readU32(notes, offset);
    const uint32_t descSize = readU32(notes, offset + 4);
    const uint32_t type = readU32(notes, offset + 8);
    const size_t name = offset + 12;
    const size_t desc = name + align4(nameSize);
    const size_t next = desc + align4(descSize);
    if (desc > notes.size() || desc + descSize > notes.size()) break;
    if (type == kNoteGnuBuildId && nameSize == 4 && std::memcmp(notes.data() + name, "GNU", 4) == 0 && descSize > 0)
      return notes.substr(desc, descSize);
    offset = next;
  }
  return {};
}

KernelSnapshot takeKernelSnapshot(const KernelPaths& paths) {
  KernelSnapshot k;
  utsname uts{};
  if (::uname(&uts) == 0) k.release = uts.release;
  k.buildId = buildIdFromKernelNotes(readFile(paths.notes));
  {
    std::ifstream in(paths.kptrRestrict);
    int value = -1;
    if (in >> value) k.kptrRestrict = value;
  }

  // Modules first: kallsyms names their symbols by module.
  std::map<std::string, uint16_t> moduleIndex;
  {
    std::ifstream in(paths.modules);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      KernelModuleInfo m;
      std::string refs, deps, state, address;
      if (!(fields >> m.name >> m.size >> refs >> deps >> state >> address)) continue;
      m.base = std::strtoull(address.c_str(), nullptr, 16);
      m.buildId = buildIdFromKernelNotes(readFile(paths.moduleDir / m.name / "notes" / ".note.gnu.build-id"));
      moduleIndex.emplace(m.name, static_cast<uint16_t>(k.modules.size() + 1));
      k.modules.push_back(std::move(m));
    }
  }

  std::vector<RawSymbol> symbols;
  bool anyAddress = false;
  {
    std::ifstream in(paths.kallsyms);
    std::string line;
    while (std::getline(in, line)) {
      // "ffffffff81000000 T _text" or "ffffffffc0a01000 t helper\t[module]"
      const auto firstSpace = line.find(' ');
      if (firstSpace == std::string::npos || firstSpace + 3 > line.size()) continue;
      const char type = line[firstSpace + 1];
      const uint64_t address = std::strtoull(line.substr(0, firstSpace).c_str(), nullptr, 16);
      anyAddress |= address != 0;
      if (!isTextSymbol(type)) continue;
      std::string rest = line.substr(firstSpace + 3);
      uint16_t module = 0;
      if (const auto tab = rest.find('\t'); tab != std::string::npos) {
        std::string name = rest.substr(tab + 1);
        if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
          const auto it = moduleIndex.find(name.substr(1, name.size() - 2));
          if (it != moduleIndex.end()) module = it->second;
        }
        rest.resize(tab);
      }
      if (rest == "_text" && module == 0) k.textStart = address;
      symbols.push_back({address, module, std::move(rest)});
    }
  }
  // kptr_restrict (or reading without CAP_SYSLOG) shows every address as 0: the names
  // alone cannot symbolize anything, so none are kept.
  k.symbolsHidden = !anyAddress;
  if (k.symbolsHidden) return k;

  std::stable_sort(symbols.begin(), symbols.end(),
                   [](const RawSymbol& a, const RawSymbol& b) { return a.address < b.address; });
  k.symbolAddresses.reserve(symbols.size());
  k.symbolModules.reserve(symbols.size());
  for (const auto& s : symbols) {
    k.symbolAddresses.push_back(s.address);
    k.symbolModules.push_back(s.module);
    k.symbolNames += s.name;
    k.symbolNames += '\0';
  }
  return k;
}

void writeKernelSnapshot(schema::KernelInfo::Builder out, const KernelSnapshot& k) {
  out.setBuildId(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(k.buildId.data()), k.buildId.size()));
  out.setRelease(k.release);
  out.setKptrRestrict(k.kptrRestrict);
  out.setSymbolsHidden(k.symbolsHidden);
  out.setTextStart(k.textStart);
  auto symbols = out.initSymbols();
  const auto n = static_cast<unsigned>(k.symbolAddresses.size());
  auto addresses = symbols.initAddress(n);
  auto modules = symbols.initModule(n);
  for (unsigned i = 0; i < n; ++i) {
    addresses.set(i, k.symbolAddresses[i]);
    modules.set(i, k.symbolModules[i]);
  }
  symbols.setNames(
      capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(k.symbolNames.data()), k.symbolNames.size()));
  auto list = out.initModules(static_cast<unsigned>(k.modules.size()));
  for (unsigned i = 0; i < k.modules.size(); ++i) {
    const auto& m = k.modules[i];
    list[i].setName(m.name);
    list[i].setBase(m.base);
    list[i].setSize(m.size);
    list[i].setBuildId(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(m.buildId.data()), m.buildId.size()));
  }
}

}  // namespace heaptrail::recorder
