// Every frame of every inline chain -- function, file (full path) and line -- agrees with
// `llvm-symbolizer -i` (version 16) on the same addresses: optimized C++ fixtures (GCC DWARF 5
// and 4, clang DWARF 5), C fixtures compiled like distribution packages (relative
// compilation and include directories, DWARF 4 and 5), and the system's libc and ld.so with
// their Debian debug files (libc6-dbg).
#include <link.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/symbols/symbolizer.h"
#include "common/build_id.h"
#include "common/hex.h"
#include "tests/support/elf_oracle.h"
#include "tests/support/temp_dir.h"

namespace heaptrail::symbols {
namespace {

namespace fs = std::filesystem;
using testing::ElfOracle;
using Chain = std::vector<SourceFrame>;

std::string fx(const std::string& name) { return std::string(FX_DIR) + "/" + name; }

// `contents` in a file of its own, for a tool's standard input.
class InputFile {
 public:
  explicit InputFile(const std::string& contents) { std::ofstream(dir_ / "input") << contents; }
  fs::path path() const { return dir_ / "input"; }

 private:
  testing::TempDir dir_;
};

std::string run(const std::string& command) {
  std::unique_ptr<FILE, decltype(&pclose)> pipe(::popen(command.c_str(), "r"), pclose);
  if (!pipe) return {};
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
  return out;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Demangled by binutils' c++filt: the demangler style heaptrail prints (libstdc++'s), so
// names compare exactly; llvm's own demangler spaces templates and clones differently.
std::map<std::string, std::string> demangle(const std::set<std::string>& mangled) {
  std::map<std::string, std::string> out;
  if (mangled.empty()) return out;
  std::string input;
  for (const auto& m : mangled) input += m + "\n";
  InputFile file(input);
  const auto demangled = lines(run("c++filt < '" + file.path().string() + "'"));
  EXPECT_EQ(demangled.size(), mangled.size());
  auto it = mangled.begin();
  for (size_t i = 0; i < demangled.size() && it != mangled.end(); ++i, ++it) out[*it] = demangled[i];
  return out;
}

// llvm-symbolizer's inline chains for link-time addresses of `binary`.
std::vector<Chain> llvmChains(const std::string& binary, const std::vector<uint64_t>& vaddrs) {
  std::string input;
  for (uint64_t a : vaddrs) input += "0x" + (std::ostringstream() << std::hex << a).str() + "\n";
  InputFile file(input);
  const auto output = lines(run(std::string(LLVM_SYMBOLIZER) + " -i --no-demangle --output-style=JSON --obj='" +
                                binary + "' < '" + file.path().string() + "'"));
  std::vector<Chain> chains;
  std::set<std::string> mangled;
  for (const auto& line : output) {
    const auto doc = nlohmann::json::parse(line);
    Chain chain;
    for (const auto& s : doc.at("Symbol")) {
      SourceFrame f;
      f.function = s.at("FunctionName").get<std::string>();
      f.file = s.at("FileName").get<std::string>();
      f.line = s.at("Line").get<unsigned>();
      if (f.function == "??") f.function.clear();
      if (f.file == "??") f.file.clear();
      if (f.function.rfind("_Z", 0) == 0) mangled.insert(f.function);
      chain.push_back(f);
    }
    chains.push_back(chain);
  }
  const auto names = demangle(mangled);
  for (auto& chain : chains)
    for (auto& f : chain)
      if (auto it = names.find(f.function); it != names.end()) f.function = it->second;
  return chains;
}

std::string describe(const Chain& chain) {
  std::string out;
  for (const auto& f : chain) out += "\n      " + (f.function.empty() ? "??" : f.function) + " " + f.file + ":" + std::to_string(f.line);
  return out;
}

struct Agreement {
  size_t compared = 0;
  size_t withInlines = 0;      // addresses whose chain has more than one frame
  size_t namedBeyondLlvm = 0;  // llvm has no name, heaptrail names the ELF symbol there
  std::vector<std::pair<uint64_t, Chain>> chains;  // heaptrail's, for further checks
};

// Symbolizes `vaddrs` of `binary` (file offsets through `layout`, function names of the
// symbols in `symbols` for the check below) and compares with llvm-symbolizer.
Agreement compareWithLlvm(const std::string& binary, const std::vector<uint64_t>& vaddrs, const ElfOracle& layout,
                          const ElfOracle& symbols, SymbolizerOptions options = {}) {
  Agreement result;
  if (std::string(LLVM_SYMBOLIZER).empty()) {
    ADD_FAILURE() << "llvm-symbolizer-16 was not found at configure time: install llvm-16 (tools/setup.sh)";
    return result;
  }
  const std::vector<Chain> reference = llvmChains(binary, vaddrs);
  EXPECT_EQ(reference.size(), vaddrs.size());
  Symbolizer symbolizer(std::move(options));
  const ModuleRef module{binary, common::readBuildId(binary)};
  std::set<std::string> symbolNames;
  for (const auto& s : symbols.functions()) symbolNames.insert(s.name);
  const auto demangledSymbols = demangle(symbolNames);
  size_t mismatches = 0;
  for (size_t i = 0; i < vaddrs.size() && i < reference.size(); ++i) {
    const auto offset = layout.fileOffset(vaddrs[i]);
    if (!offset) {
      ADD_FAILURE() << std::hex << vaddrs[i] << " is in no PT_LOAD of " << binary;
      continue;
    }
    const SymbolizedFrame ours = symbolizer.resolve(module, *offset);
    Chain chain = ours.frames;
    if (chain.empty()) chain.emplace_back();  // llvm prints one empty frame where it knows nothing
    Chain expected = reference[i];
    // Where llvm has no name for the function the code belongs to, heaptrail may still name
    // it from the debug file's symbol table: it must be an ELF symbol covering the address.
    if (expected.back().function.empty() && !chain.back().function.empty()) {
      std::set<std::string> covering;
      for (const auto& s : symbols.functions())
        if (vaddrs[i] >= s.address && vaddrs[i] < s.address + s.size) covering.insert(demangledSymbols.at(s.name));
      EXPECT_TRUE(covering.count(chain.back().function))
          << std::hex << vaddrs[i] << ": " << chain.back().function << " is not " << ::testing::PrintToString(covering);
      expected.back().function = chain.back().function;
      ++result.namedBeyondLlvm;
    }
    ++result.compared;
    result.withInlines += expected.size() > 1;
    if (chain != expected && ++mismatches <= 10)
      ADD_FAILURE() << binary << " 0x" << std::hex << vaddrs[i] << ": heaptrail" << describe(chain)
                    << "\n    llvm-symbolizer -i" << describe(expected);
    result.chains.emplace_back(vaddrs[i], std::move(chain));
  }
  EXPECT_EQ(mismatches, 0u) << "of " << result.compared << " addresses of " << binary;
  return result;
}

// Every address of every function of `oracle` (or of those named in `only`).
std::vector<uint64_t> everyAddress(const ElfOracle& oracle, const std::set<std::string>& only = {}) {
  std::vector<uint64_t> out;
  for (const auto& s : oracle.functions())
    if (only.empty() || only.count(s.name))
      for (uint64_t a = s.address; a < s.address + s.size; ++a) out.push_back(a);
  return out;
}

std::vector<uint64_t> sampledAddresses(const ElfOracle& oracle, size_t count, unsigned seed) {
  std::vector<uint64_t> out;
  const auto& functions = oracle.functions();
  if (functions.empty()) return out;
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < count; ++i) {
    const auto& s = functions[rng() % functions.size()];
    out.push_back(s.address + rng() % s.size);
  }
  return out;
}

void expectFixtureAgrees(const std::string& name, size_t minInlined) {
  SCOPED_TRACE(name);
  const ElfOracle oracle(fx(name));
  const auto vaddrs = everyAddress(oracle);
  ASSERT_GT(vaddrs.size(), 100u);
  SymbolizerOptions options;
  options.systemDebugDir = false;
  const Agreement a = compareWithLlvm(fx(name), vaddrs, oracle, oracle, options);
  EXPECT_GE(a.withInlines, minInlined) << "the fixture must exercise inlining";
}

TEST(LlvmAgreement, GccDwarf5InlineChains) { expectFixtureAgrees("fx_inline_dw5", 300); }
TEST(LlvmAgreement, GccDwarf4InlineChains) { expectFixtureAgrees("fx_inline_dw4", 300); }
TEST(LlvmAgreement, ClangDwarf5InlineChains) { expectFixtureAgrees("fx_inline_clang", 300); }

// Binaries of the architectures a device records: every address of every function
// (32-bit arm Thumb symbols carry bit 0, the code starts one byte lower).
void expectCrossBinaryAgrees(const std::string& name, size_t minInlined) {
  SCOPED_TRACE(name);
  if (!fs::exists(fx(name))) GTEST_FAIL() << fx(name) << " was not built: install the cross compilers (tools/setup.sh)";
  const ElfOracle oracle(fx(name));
  std::vector<uint64_t> vaddrs;
  for (const auto& s : oracle.functions())
    for (uint64_t a = s.address & ~uint64_t{1}; a < (s.address & ~uint64_t{1}) + s.size; ++a) vaddrs.push_back(a);
  ASSERT_GT(vaddrs.size(), 50u);
  SymbolizerOptions options;
  options.systemDebugDir = false;
  const Agreement a = compareWithLlvm(fx(name), vaddrs, oracle, oracle, options);
  EXPECT_GE(a.withInlines, minInlined) << "the fixture must exercise inlining";
  EXPECT_EQ(a.compared, vaddrs.size());
}

TEST(LlvmAgreement, Aarch64InlineChains) { expectCrossBinaryAgrees("fx_inline_aarch64", 300); }
TEST(LlvmAgreement, ArmhfThumbElf32) { expectCrossBinaryAgrees("fx_paths_armhf_thumb", 5); }
TEST(LlvmAgreement, ArmhfArmStateElf32) { expectCrossBinaryAgrees("fx_paths_armhf_arm", 5); }
TEST(LlvmAgreement, ArmhfThumbSymbolTableOnly) { expectCrossBinaryAgrees("fx_paths_armhf_thumb_symtab", 0); }

void expectRelativePathsAgree(const std::string& name) {
  SCOPED_TRACE(name);
  const ElfOracle oracle(fx(name));
  SymbolizerOptions options;
  options.systemDebugDir = false;
  const Agreement a = compareWithLlvm(fx(name), everyAddress(oracle), oracle, oracle, options);
  // The paths as the DWARF builds them, not joined twice.
  std::set<std::string> files;
  for (const auto& [vaddr, chain] : a.chains)
    for (const auto& f : chain) files.insert(f.file);
  EXPECT_TRUE(files.count("./app/main.c")) << ::testing::PrintToString(files);
  EXPECT_TRUE(files.count("./app/../include/helper.h")) << ::testing::PrintToString(files);
  EXPECT_GE(a.withInlines, 5u) << "helper_scale is inlined";
}

TEST(LlvmAgreement, RelativeCompilationDirectoryDwarf5) { expectRelativePathsAgree("fx_paths_dw5"); }
TEST(LlvmAgreement, RelativeCompilationDirectoryDwarf4) { expectRelativePathsAgree("fx_paths_dw4"); }

// The loaded copy of a system library, by the start of its file name.
std::string loadedLibrary(const std::string& prefix) {
  struct Search {
    std::string prefix, found;
  } search{prefix, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        const std::string name = info->dlpi_name != nullptr ? info->dlpi_name : "";
        if (fs::path(name).filename().string().rfind(s->prefix, 0) == 0) s->found = name;
        return 0;
      },
      &search);
  return search.found;
}

// The Debian debug file of `binary` (libc6-dbg), "" if not installed.
std::string systemDebugFile(const std::string& binary) {
  const std::string id = common::hexBytes(common::readBuildId(binary));
  if (id.size() < 4) return {};
  const std::string path = "/usr/lib/debug/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug";
  return fs::exists(path) ? path : std::string();
}

struct SystemLibrary {
  std::string binary, debug;
};

SystemLibrary systemLibrary(const std::string& prefix) {
  SystemLibrary lib{loadedLibrary(prefix), {}};
  EXPECT_FALSE(lib.binary.empty()) << prefix << " is not loaded";
  if (!lib.binary.empty()) lib.debug = systemDebugFile(lib.binary);
  EXPECT_FALSE(lib.debug.empty()) << "no debug file for " << lib.binary << ": install libc6-dbg (tools/setup.sh)";
  return lib;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A spread of `samples` addresses over all of a system library, plus every address of the
// `functions` (names in its debug file), compared with llvm-symbolizer.
std::optional<Agreement> compareSystemLibrary(const std::string& prefix, size_t samples, unsigned seed,
                                              const std::set<std::string>& functions) {
  const SystemLibrary lib = systemLibrary(prefix);
  if (lib.debug.empty()) return std::nullopt;
  const ElfOracle layout(lib.binary);
  const ElfOracle symbols(lib.debug);
  std::vector<uint64_t> vaddrs = sampledAddresses(symbols, samples, seed);
  const auto named = everyAddress(symbols, functions);
  EXPECT_GT(named.size(), 20 * functions.size()) << "the functions are in " << lib.debug;
  vaddrs.insert(vaddrs.end(), named.begin(), named.end());
  return compareWithLlvm(lib.binary, vaddrs, layout, symbols);
}

TEST(LlvmAgreement, LibcWithDebianDebugSymbols) {
  // With the functions that allocate a stdout buffer and getpwuid (whose code is
  // nss/getXXbyYY.c, included from pwd/).
  const auto a = compareSystemLibrary("libc.so", 3000, 20240611,
                                      {"_IO_file_doallocate", "_IO_doallocbuf", "_IO_new_file_overflow",
                                       "_IO_new_file_xsputn", "_IO_fputs", "getpwuid"});
  if (!a) return;
  EXPECT_GE(a->withInlines, 300u);
  EXPECT_LT(a->namedBeyondLlvm, a->compared / 20);
  bool doallocate = false, getXXbyYY = false;
  for (const auto& [vaddr, chain] : a->chains) {
    doallocate |= chain.back().function == "_IO_file_doallocate" && chain.back().file == "./libio/filedoalloc.c";
    getXXbyYY |= chain.back().function == "getpwuid" && chain.front().file == "./pwd/../nss/getXXbyYY.c";
  }
  EXPECT_TRUE(doallocate) << "libio/filedoalloc.c named once, not libio/libio/libio/filedoalloc.c";
  EXPECT_TRUE(getXXbyYY) << "getpwuid's code is in nss/getXXbyYY.c";
}

TEST(LlvmAgreement, DynamicLoaderCallocInlinedIntoAllocateDtv) {
  const auto a = compareSystemLibrary("ld-linux", 1000, 7, {"allocate_dtv"});
  if (!a) return;
  bool inlinedCalloc = false;
  for (const auto& [vaddr, chain] : a->chains)
    inlinedCalloc |= chain.size() == 2 && chain[0].function == "calloc" &&
                     endsWith(chain[0].file, "/include/rtld-malloc.h") && chain[1].function == "allocate_dtv" &&
                     endsWith(chain[1].file, "/elf/dl-tls.c");
  EXPECT_TRUE(inlinedCalloc) << "calloc (include/rtld-malloc.h) inlined into allocate_dtv (elf/dl-tls.c)";
}

TEST(SymbolizerCache, LibcCompileUnitsAreReadWhenAnAddressFallsIntoThem) {
  const SystemLibrary libc = systemLibrary("libc.so");
  if (libc.debug.empty()) return;
  const ElfOracle layout(libc.binary);
  const ElfOracle symbols(libc.debug);
  const auto offsetOf = [&](const std::string& function, uint64_t delta) {
    for (const auto& s : symbols.functions())
      if (s.name == function) return layout.fileOffset(s.address + delta).value_or(0);
    ADD_FAILURE() << function << " not in " << libc.debug;
    return uint64_t{0};
  };
  Symbolizer symbolizer{SymbolizerOptions{}};
  const ModuleRef module{libc.binary, common::readBuildId(libc.binary)};
  EXPECT_TRUE(symbolizer.resolve(module, offsetOf("_IO_file_doallocate", 8)).resolved());
  EXPECT_GT(symbolizer.stats().dwarfUnits, 1000u);
  EXPECT_EQ(symbolizer.stats().dwarfUnitsRead, 1u) << "only the unit of _IO_file_doallocate";
  EXPECT_TRUE(symbolizer.resolve(module, offsetOf("_IO_file_doallocate", 20)).resolved());
  EXPECT_EQ(symbolizer.stats().dwarfUnitsRead, 1u);
  EXPECT_TRUE(symbolizer.resolve(module, offsetOf("getpwuid", 8)).resolved());
  EXPECT_EQ(symbolizer.stats().dwarfUnitsRead, 2u);
  EXPECT_EQ(symbolizer.stats().dwarfLoads, 1u);
}

}  // namespace
}  // namespace heaptrail::symbols
