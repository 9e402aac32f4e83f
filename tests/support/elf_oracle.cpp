#include "tests/support/elf_oracle.h"

#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace heaptrail::testing {
namespace {

std::string capture(const std::string& command) {
  std::unique_ptr<FILE, decltype(&pclose)> pipe(::popen(command.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
  return out;
}

}  // namespace

ElfOracle::ElfOracle(const std::filesystem::path& binary) {
  std::istringstream phdrs(capture("readelf -lW '" + binary.string() + "'"));
  std::string line;
  while (std::getline(phdrs, line)) {
    std::istringstream fields(line);
    std::string type;
    Load l{};
    std::string offset, vaddr, paddr, filesz;
    if (fields >> type && type == "LOAD" && fields >> offset >> vaddr >> paddr >> filesz) {
      l.offset = std::stoull(offset, nullptr, 16);
      l.vaddr = std::stoull(vaddr, nullptr, 16);
      l.filesz = std::stoull(filesz, nullptr, 16);
      loads_.push_back(l);
    }
  }
  std::istringstream syms(capture("nm -S --defined-only '" + binary.string() + "' 2>/dev/null"));
  while (std::getline(syms, line)) {
    std::istringstream fields(line);
    std::string address, size, type, name;
    if (!(fields >> address >> size >> type >> name)) continue;
    if (type != "T" && type != "t" && type != "W" && type != "w") continue;
    symbols_.push_back({std::stoull(address, nullptr, 16), std::stoull(size, nullptr, 16), name});
  }
}

std::string ElfOracle::functionAt(uint64_t fileOffset) const {
  for (const auto& l : loads_) {
    if (fileOffset < l.offset || fileOffset >= l.offset + l.filesz) continue;
    const uint64_t vaddr = fileOffset - l.offset + l.vaddr;
    for (const auto& s : symbols_)
      if (vaddr >= s.address && vaddr < s.address + s.size) return s.name;
  }
  return {};
}

}  // namespace heaptrail::testing
