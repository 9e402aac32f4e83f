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
  const std::string quoted = "'" + binary.string() + "'";
  std::istringstream headers(capture("readelf -hlSW " + quoted + " 2>/dev/null"));
  std::string line;
  while (std::getline(headers, line)) {
    std::istringstream fields(line);
    std::string first;
    if (!(fields >> first)) continue;
    if (first == "Type:") {
      fields >> type_;
    } else if (first == "LOAD") {
      std::string offset, vaddr, paddr, filesz, memsz, flags;
      if (!(fields >> offset >> vaddr >> paddr >> filesz >> memsz)) continue;
      std::getline(fields, flags);
      loads_.push_back({std::stoull(offset, nullptr, 16), std::stoull(vaddr, nullptr, 16),
                        std::stoull(filesz, nullptr, 16), flags.find('E') != std::string::npos});
    } else if (first.front() == '[' && line.find(']') != std::string::npos) {
      // "  [Nr] Name Type Address Off Size ..."; "[ 1]" splits in two fields.
      std::istringstream rest(line.substr(line.find(']') + 1));
      std::string name, type, address, offset, size;
      if (rest >> name >> type >> address >> offset >> size && name != "Name")
        sections_.push_back({name, std::stoull(offset, nullptr, 16), std::stoull(size, nullptr, 16)});
    }
  }
  std::istringstream syms(capture("nm -S --defined-only " + quoted + " 2>/dev/null"));
  while (std::getline(syms, line)) {
    // "address size type name", or "address type name" for a symbol without a size (a label).
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string word; fields >> word;) f.push_back(word);
    if (f.size() != 3 && f.size() != 4) continue;
    const std::string& type = f[f.size() - 2];
    if (type != "T" && type != "t" && type != "W" && type != "w") continue;
    const Symbol symbol{std::stoull(f[0], nullptr, 16), f.size() == 4 ? std::stoull(f[1], nullptr, 16) : 0, f.back()};
    (symbol.size > 0 ? symbols_ : labels_).push_back(symbol);
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

std::optional<uint64_t> ElfOracle::fileOffset(uint64_t vaddr) const {
  for (const auto& l : loads_)
    if (vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz) return vaddr - l.vaddr + l.offset;
  return std::nullopt;
}

std::optional<uint64_t> ElfOracle::symbolOffset(const std::string& name) const {
  for (const auto* list : {&symbols_, &labels_})
    for (const auto& s : *list)
      if (s.name == name) return fileOffset(s.address);
  return std::nullopt;
}

bool ElfOracle::executableSegmentHasVaddrNotEqualOffset() const {
  for (const auto& l : loads_)
    if (l.executable) return l.vaddr != l.offset;
  return false;
}

}  // namespace heaptrail::testing
