// symbench: resolves a list of file offsets in one ELF file with heaptrail's symbolizer
// library, the way `heaptrail analyze` does, and times it.
//
//   symbench BINARY OFFSETS_FILE RESULTS_FILE
//
// OFFSETS_FILE: one hex file offset per line. RESULTS_FILE gets one line per offset:
// "offset" then "<TAB>function<TAB>file<TAB>line" for each function at the address, inlined
// calls first (as `llvm-symbolizer -i` lists them). Prints on stdout
// "addresses=N cold_ns=T warm_ns=W resolved=R": cold is a fresh Symbolizer (opening
// the file, symbol table and DWARF line tables included), warm a second pass on it.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "analyzer/symbols/symbolizer.h"
#include "common/build_id.h"

namespace sym = heaptrail::symbols;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: symbench BINARY OFFSETS_FILE RESULTS_FILE\n");
    return 2;
  }
  std::vector<uint64_t> offsets;
  {
    std::ifstream in(argv[2]);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) offsets.push_back(std::stoull(line, nullptr, 16));
  }
  const sym::ModuleRef module{argv[1], heaptrail::common::readBuildId(argv[1])};

  using Clock = std::chrono::steady_clock;
  std::vector<sym::SymbolizedFrame> results;
  results.reserve(offsets.size());
  const auto t0 = Clock::now();
  sym::Symbolizer symbolizer{sym::SymbolizerOptions{}};
  for (uint64_t off : offsets) results.push_back(symbolizer.resolve(module, off));
  const auto t1 = Clock::now();
  size_t checksum = 0;
  for (uint64_t off : offsets) checksum += symbolizer.resolve(module, off).frames.size();
  const auto t2 = Clock::now();

  size_t resolved = 0;
  std::FILE* out = std::fopen(argv[3], "w");
  if (!out) return 1;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const auto& r = results[i];
    resolved += r.resolved() && r.frames.front().line != 0;
    std::fprintf(out, "%llx", static_cast<unsigned long long>(offsets[i]));
    if (r.frames.empty()) std::fprintf(out, "\t\t\t0");
    for (const auto& f : r.frames) std::fprintf(out, "\t%s\t%s\t%u", f.function.c_str(), f.file.c_str(), f.line);
    std::fprintf(out, "\n");
  }
  std::fclose(out);
  const auto ns = [](auto d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); };
  std::printf("addresses=%zu cold_ns=%lld warm_ns=%lld resolved=%zu checksum=%zu\n", offsets.size(),
              static_cast<long long>(ns(t1 - t0)), static_cast<long long>(ns(t2 - t1)), resolved, checksum);
  return 0;
}
