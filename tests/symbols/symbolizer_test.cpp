#include "analyzer/symbols/symbolizer.h"
#include "common/build_id.h"
#include "common/hex.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/elf_oracle.h"
#include "tests/support/run_command.h"
#include "tests/support/source_markers.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using heaptrail::common::bytesFromHex;
using heaptrail::common::hexBytes;
using heaptrail::symbols::FrameStatus;
using heaptrail::symbols::ModuleRef;
using heaptrail::common::readBuildId;
using heaptrail::symbols::SymbolizedFrame;
using heaptrail::symbols::Symbolizer;
using heaptrail::symbols::SymbolizerOptions;
using heaptrail::testing::ElfOracle;
using heaptrail::testing::TempDir;

namespace {

constexpr const char* kAllocate = "_ZN17heaptrail_fixture9Allocator8allocateEm";
constexpr const char* kAllocateDemangled = "heaptrail_fixture::Allocator::allocate(unsigned long)";
constexpr const char* kWidgetMake = "_ZN17heaptrail_fixture3lib6Widget4makeEi";
constexpr const char* kWidgetMakeDemangled = "heaptrail_fixture::lib::Widget::make(int)";

std::string fx(const std::string& relative) { return std::string(FX_DIR) + "/" + relative; }

unsigned markedLine(const char* source, const std::string& tag) {
  return heaptrail::testing::markerLine(source, "LINE:" + tag);
}

// One oracle per file: each runs readelf and nm.
const ElfOracle& oracle(const std::string& file) {
  static std::map<std::string, ElfOracle> oracles;
  return oracles.try_emplace(file, file).first->second;
}

uint64_t offsetOf(const std::string& file, const std::string& symbol) {
  auto offset = oracle(file).symbolOffset(symbol);
  EXPECT_TRUE(offset.has_value()) << symbol << " not in " << file;
  return offset.value_or(0);
}

SymbolizerOptions isolated(std::vector<fs::path> debugDirs = {}) {
  SymbolizerOptions options;
  options.debugDirs = std::move(debugDirs);
  options.systemDebugDir = false;
  options.debuginfod = false;
  return options;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<char> readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void writeAll(const fs::path& path, const char* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
}

// Checks the two canonical lookups in fixture_main.cpp: the first instruction of
// Allocator::allocate (definition line) and the marked line inside it.
void expectAllocateResolves(Symbolizer& symbolizer, const ModuleRef& module, const std::string& unstripped,
                            const std::string& expectedUsedFile) {
  SCOPED_TRACE(module.path);
  SymbolizedFrame entry = symbolizer.resolve(module, offsetOf(unstripped, kAllocate));
  EXPECT_EQ(entry.status, FrameStatus::Resolved) << entry.reason;
  EXPECT_EQ(entry.frames.size(), 1u) << "built -O0 -fno-inline: nothing is inlined";
  EXPECT_EQ(entry.outermost().function, kAllocateDemangled);
  EXPECT_EQ(entry.outermost().line, markedLine(FX_MAIN_SOURCE, "allocate_def"));
  EXPECT_EQ(fs::path(entry.outermost().file), fs::path(FX_MAIN_SOURCE).lexically_normal());
  EXPECT_EQ(entry.usedFile, expectedUsedFile);

  // +1: a return address minus one lands inside an instruction, not on its first byte.
  SymbolizedFrame inner = symbolizer.resolve(module, offsetOf(unstripped, "fx_mark_alloc_here") + 1);
  EXPECT_EQ(inner.status, FrameStatus::Resolved) << inner.reason;
  EXPECT_EQ(inner.outermost().function, kAllocateDemangled);
  EXPECT_EQ(inner.outermost().line, markedLine(FX_MAIN_SOURCE, "alloc_here"));

  SymbolizedFrame cfn = symbolizer.resolve(module, offsetOf(unstripped, "fixture_c_function"));
  EXPECT_EQ(cfn.status, FrameStatus::Resolved) << cfn.reason;
  EXPECT_EQ(cfn.outermost().function, "fixture_c_function");
  EXPECT_EQ(cfn.outermost().line, markedLine(FX_MAIN_SOURCE, "c_function_def"));
}

void expectAllocateResolves(const std::string& binary) {
  Symbolizer symbolizer(isolated());
  expectAllocateResolves(symbolizer, {binary, ""}, binary, binary);
}

}  // namespace

TEST(SymbolizerLayout, PieExecutable) {
  ASSERT_EQ(oracle(fx("fx_pie")).type(), "DYN");
  expectAllocateResolves(fx("fx_pie"));
}

TEST(SymbolizerLayout, NonPieExecutable) {
  ASSERT_EQ(oracle(fx("fx_nopie")).type(), "EXEC");
  ASSERT_TRUE(oracle(fx("fx_nopie")).executableSegmentHasVaddrNotEqualOffset());
  expectAllocateResolves(fx("fx_nopie"));
}

TEST(SymbolizerLayout, TextSegmentMovedSoVaddrDiffersFromOffset) {
  ASSERT_TRUE(oracle(fx("fx_textseg")).executableSegmentHasVaddrNotEqualOffset());
  expectAllocateResolves(fx("fx_textseg"));
}

TEST(SymbolizerLayout, LldPackedSegments) {
  if (!FX_HAVE_LLD) GTEST_SKIP() << "ld.lld not available";
  ASSERT_TRUE(oracle(fx("fx_lld")).executableSegmentHasVaddrNotEqualOffset());
  expectAllocateResolves(fx("fx_lld"));
}

TEST(SymbolizerLayout, Dwarf4LineTable) { expectAllocateResolves(fx("fx_dwarf4")); }

// Debian's debug packages ship SHF_COMPRESSED sections: libdwarf gets them inflated
// (libdeflate) through our section reader, and the answers are those of the plain file.
TEST(SymbolizerLayout, CompressedDebugSections) {
  TempDir dir;
  const fs::path compressed = dir.path() / "fx_pie";
  const auto copy = heaptrail::testing::runCommand(
      {"/usr/bin/objcopy", "--compress-debug-sections=zlib", fx("fx_pie"), compressed.string()});
  ASSERT_EQ(copy.exitCode, 0) << copy.err;
  const auto flags = heaptrail::testing::runCommand({"/usr/bin/readelf", "-SW", compressed.string()});
  const size_t info = flags.out.find(".debug_info");
  ASSERT_NE(info, std::string::npos);
  const std::string line = flags.out.substr(info, flags.out.find('\n', info) - info);
  ASSERT_NE(line.find(" C "), std::string::npos) << "objcopy did not compress: " << line;
  Symbolizer symbolizer(isolated());
  Symbolizer plain(isolated());
  expectAllocateResolves(symbolizer, {compressed.string(), ""}, fx("fx_pie"), compressed.string());
  for (const char* symbol : {kAllocate, "fx_mark_alloc_here"}) {
    const uint64_t offset = offsetOf(fx("fx_pie"), symbol) + 1;
    const SymbolizedFrame a = symbolizer.resolve({compressed.string(), ""}, offset);
    const SymbolizedFrame b = plain.resolve({fx("fx_pie"), ""}, offset);
    EXPECT_EQ(a.frames, b.frames) << symbol;
  }
}

TEST(SymbolizerLayout, SharedLibrary) {
  const std::string lib = fx("libfx_shared.so");
  Symbolizer symbolizer(isolated());
  SymbolizedFrame entry = symbolizer.resolve({lib, ""}, offsetOf(lib, kWidgetMake));
  EXPECT_EQ(entry.status, FrameStatus::Resolved) << entry.reason;
  EXPECT_EQ(entry.outermost().function, kWidgetMakeDemangled);
  EXPECT_EQ(entry.outermost().line, markedLine(FX_LIB_SOURCE, "lib_make_def"));
  EXPECT_TRUE(endsWith(entry.outermost().file, "fixture_lib.cpp")) << entry.outermost().file;

  SymbolizedFrame inner = symbolizer.resolve({lib, ""}, offsetOf(lib, "fx_mark_lib_make") + 2);
  EXPECT_EQ(inner.outermost().function, kWidgetMakeDemangled);
  EXPECT_EQ(inner.outermost().line, markedLine(FX_LIB_SOURCE, "lib_make_here"));
}

TEST(SymbolizerLayout, OffsetOutsideAnyLoadSegment) {
  Symbolizer symbolizer(isolated());
  const auto size = fs::file_size(fx("fx_pie"));
  SymbolizedFrame frame = symbolizer.resolve({fx("fx_pie"), ""}, size + 0x100000);
  EXPECT_EQ(frame.status, FrameStatus::OutsideImage);
  EXPECT_NE(frame.reason.find("PT_LOAD"), std::string::npos) << frame.reason;
}

TEST(SymbolizerSymbols, StrippedSharedLibraryFallsBackToDynsym) {
  const std::string lib = fx("libfx_shared.so");
  Symbolizer symbolizer(isolated());
  SymbolizedFrame frame = symbolizer.resolve({fx("stripped/libfx_shared.so"), ""}, offsetOf(lib, kWidgetMake) + 4);
  EXPECT_EQ(frame.status, FrameStatus::Resolved) << frame.reason;
  EXPECT_EQ(frame.outermost().function, kWidgetMakeDemangled);
  EXPECT_EQ(frame.outermost().line, 0u);
  EXPECT_TRUE(frame.outermost().file.empty());
  EXPECT_EQ(frame.usedFile, fx("stripped/libfx_shared.so"));

  SymbolizedFrame entry = symbolizer.resolve({fx("stripped/libfx_shared.so"), ""}, offsetOf(lib, "fixture_lib_entry"));
  EXPECT_EQ(entry.outermost().function, "fixture_lib_entry");
}

TEST(SymbolizerSymbols, StrippedExecutableWithoutDebugInfoHasNoSymbols) {
  Symbolizer symbolizer(isolated());
  SymbolizedFrame frame =
      symbolizer.resolve({fx("stripped/fx_ida"), bytesFromHex(FX_BUILD_ID_A)}, offsetOf(fx("fx_ida"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::NoSymbols);
  EXPECT_TRUE(frame.outermost().function.empty());
  EXPECT_FALSE(frame.reason.empty());
}

TEST(SymbolizerDebugFiles, StrippedBinaryUsesDebugFileByBuildId) {
  Symbolizer symbolizer(isolated({fx("debugdir")}));
  const std::string debugFile = fx(std::string("debugdir/.build-id/") + std::string(FX_BUILD_ID_A).substr(0, 2) + "/" +
                                   std::string(FX_BUILD_ID_A).substr(2) + ".debug");
  expectAllocateResolves(symbolizer, {fx("stripped/fx_ida"), bytesFromHex(FX_BUILD_ID_A)}, fx("fx_ida"), debugFile);
}

TEST(SymbolizerDebugFiles, UnknownRecordedBuildIdUsesBinaryBuildId) {
  Symbolizer symbolizer(isolated({fx("debugdir")}));
  SymbolizedFrame frame = symbolizer.resolve({fx("stripped/fx_ida"), ""}, offsetOf(fx("fx_ida"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::Resolved) << frame.reason;
  EXPECT_EQ(frame.outermost().function, kAllocateDemangled);
  EXPECT_EQ(frame.outermost().line, markedLine(FX_MAIN_SOURCE, "allocate_def"));
}

TEST(SymbolizerDebugFiles, DebugLinkWithCrc) {
  Symbolizer symbolizer(isolated());
  ASSERT_EQ(readBuildId(fx("debuglink/fx_nobid")), "");
  expectAllocateResolves(symbolizer, {fx("debuglink/fx_nobid"), ""}, fx("fx_nobid"),
                         fx("debuglink/.debug/fx_nobid.debug"));
}

TEST(SymbolizerDebugFiles, DebugLinkWithWrongCrcIsRejected) {
  Symbolizer symbolizer(isolated());
  SymbolizedFrame frame = symbolizer.resolve({fx("badlink/fx_nobid"), ""}, offsetOf(fx("fx_nobid"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::NoSymbols) << frame.outermost().function << " " << frame.outermost().line;
}

TEST(SymbolizerBuildId, MismatchIsReportedNotResolved) {
  Symbolizer symbolizer(isolated());
  SymbolizedFrame frame =
      symbolizer.resolve({fx("fx_idb"), bytesFromHex(FX_BUILD_ID_A)}, offsetOf(fx("fx_idb"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::BuildIdMismatch);
  EXPECT_TRUE(frame.outermost().function.empty());
  EXPECT_EQ(frame.outermost().line, 0u);
  EXPECT_NE(frame.reason.find(FX_BUILD_ID_A), std::string::npos) << frame.reason;
  EXPECT_NE(frame.reason.find(FX_BUILD_ID_B), std::string::npos) << frame.reason;
}

TEST(SymbolizerBuildId, MismatchResolvedFromMatchingDebugFileWithSymtab) {
  Symbolizer symbolizer(isolated({fx("debugdir")}));
  const std::string debugFile = fx(std::string("debugdir/.build-id/") + std::string(FX_BUILD_ID_A).substr(0, 2) + "/" +
                                   std::string(FX_BUILD_ID_A).substr(2) + ".debug");
  expectAllocateResolves(symbolizer, {fx("fx_idb"), bytesFromHex(FX_BUILD_ID_A)}, fx("fx_ida"), debugFile);
}

TEST(SymbolizerBuildId, MismatchStaysMismatchWhenDebugFileLacksSymtab) {
  Symbolizer symbolizer(isolated({fx("nosymdebugdir")}));
  SymbolizedFrame frame =
      symbolizer.resolve({fx("fx_idb"), bytesFromHex(FX_BUILD_ID_A)}, offsetOf(fx("fx_idb"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::BuildIdMismatch);
  EXPECT_TRUE(frame.outermost().function.empty());
}

TEST(SymbolizerBuildId, MismatchResolvedFromFullBinaryInDebugDir) {
  Symbolizer symbolizer(isolated({fx("fulldir")}));
  const std::string full = fx(std::string("fulldir/.build-id/") + std::string(FX_BUILD_ID_A).substr(0, 2) + "/" +
                              std::string(FX_BUILD_ID_A).substr(2));
  expectAllocateResolves(symbolizer, {fx("fx_idb"), bytesFromHex(FX_BUILD_ID_A)}, fx("fx_ida"), full);
}

TEST(SymbolizerBuildId, MissingFileFoundByBuildIdInDebugDir) {
  Symbolizer symbolizer(isolated({fx("fulldir")}));
  SymbolizedFrame frame =
      symbolizer.resolve({"/nonexistent/fx_ida", bytesFromHex(FX_BUILD_ID_A)}, offsetOf(fx("fx_ida"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::Resolved) << frame.reason;
  EXPECT_EQ(frame.outermost().function, kAllocateDemangled);
}

TEST(SymbolizerBuildId, MissingFileWithOnlyKeepDebugFileStaysMissing) {
  // An --only-keep-debug file has no file offsets, so it cannot stand in for a missing binary.
  Symbolizer symbolizer(isolated({fx("debugdir")}));
  SymbolizedFrame frame =
      symbolizer.resolve({"/nonexistent/fx_ida", bytesFromHex(FX_BUILD_ID_A)}, offsetOf(fx("fx_ida"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::FileMissing);
  EXPECT_NE(frame.reason.find("/nonexistent/fx_ida"), std::string::npos) << frame.reason;
  EXPECT_NE(frame.reason.find("debug file"), std::string::npos) << frame.reason;
}

TEST(SymbolizerBuildId, UnstrippedCopyStoredAsDebugFileIsUsedAsImage) {
  Symbolizer symbolizer(isolated({fx("copydebugdir")}));
  SymbolizedFrame frame =
      symbolizer.resolve({"/nonexistent/fx_ida", bytesFromHex(FX_BUILD_ID_A)}, offsetOf(fx("fx_ida"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::Resolved) << frame.reason;
  EXPECT_EQ(frame.outermost().function, kAllocateDemangled);
  EXPECT_EQ(frame.outermost().line, markedLine(FX_MAIN_SOURCE, "allocate_def"));
}

TEST(SymbolizerBuildId, ReadBuildIdAndHex) {
  EXPECT_EQ(hexBytes(readBuildId(fx("fx_ida"))), FX_BUILD_ID_A);
  EXPECT_EQ(hexBytes(readBuildId(fx("fx_idb"))), FX_BUILD_ID_B);
  EXPECT_EQ(readBuildId(fx("fx_nobid")), "");
  EXPECT_EQ(readBuildId("/nonexistent/file"), "");
  EXPECT_EQ(bytesFromHex("zz"), "");
  EXPECT_EQ(hexBytes(bytesFromHex("00ff7A")), "00ff7a");
}

TEST(SymbolizerFiles, MissingFileNamesPath) {
  Symbolizer symbolizer(isolated());
  SymbolizedFrame frame = symbolizer.resolve({"/nonexistent/dir/libgone.so", ""}, 0x1000);
  EXPECT_EQ(frame.status, FrameStatus::FileMissing);
  EXPECT_NE(frame.reason.find("/nonexistent/dir/libgone.so"), std::string::npos) << frame.reason;
}

TEST(SymbolizerFiles, SysrootIsPrefixed) {
  SymbolizerOptions options = isolated();
  options.sysroot = fx("sysroot");
  Symbolizer symbolizer(options);
  expectAllocateResolves(symbolizer, {"/opt/app/fx_pie", ""}, fx("fx_pie"), fx("sysroot") + "/opt/app/fx_pie");

  Symbolizer plain(isolated());
  SymbolizedFrame frame = plain.resolve({"/opt/app/fx_pie", ""}, offsetOf(fx("fx_pie"), kAllocate));
  EXPECT_EQ(frame.status, FrameStatus::FileMissing);
}

TEST(SymbolizerFiles, RandomBytesAreNotElf) {
  TempDir dir;
  std::mt19937 rng(1234);
  std::vector<char> bytes(64 * 1024);
  for (char& b : bytes) b = static_cast<char>(rng());
  writeAll(dir.path() / "random.bin", bytes.data(), bytes.size());
  writeAll(dir.path() / "empty.bin", "", 0);
  // A valid ELF magic followed by garbage.
  std::copy_n("\x7f" "ELF\x02\x01\x01", 7, bytes.begin());
  writeAll(dir.path() / "magic.bin", bytes.data(), bytes.size());

  Symbolizer symbolizer(isolated());
  for (const char* name : {"random.bin", "empty.bin", "magic.bin"}) {
    SymbolizedFrame frame = symbolizer.resolve({(dir.path() / name).string(), ""}, 0x40);
    EXPECT_EQ(frame.status, FrameStatus::NotElf) << name << ": " << frame.reason;
    EXPECT_NE(frame.reason.find(name), std::string::npos) << frame.reason;
  }
}

TEST(SymbolizerFiles, TruncatedElfIsNotElf) {
  TempDir dir;
  const std::vector<char> original = readAll(fx("fx_pie"));
  ASSERT_GT(original.size(), 4096u);
  const uint64_t offset = offsetOf(fx("fx_pie"), kAllocate);
  Symbolizer symbolizer(isolated());
  std::vector<size_t> lengths = {4, 16, 52, 64, 100, 500, offset, offset + 16, original.size() / 2, original.size() - 1};
  for (size_t len = 1; len < original.size(); len += 997) lengths.push_back(len);
  for (size_t len : lengths) {
    const fs::path path = dir.path() / ("truncated_" + std::to_string(len));
    writeAll(path, original.data(), len);
    SymbolizedFrame frame = symbolizer.resolve({path.string(), ""}, offset);
    EXPECT_EQ(frame.status, FrameStatus::NotElf) << len << ": " << frame.reason;
  }
}

TEST(SymbolizerFiles, CorruptDebugSectionsDoNotCrash) {
  TempDir dir;
  std::vector<char> bytes = readAll(fx("fx_pie"));
  // Scribble over the DWARF sections, keeping the ELF and section headers intact.
  std::mt19937 rng(99);
  size_t scribbled = 0;
  for (const auto& section : oracle(fx("fx_pie")).sections()) {
    if (section.name.rfind(".debug_", 0) != 0) continue;
    for (size_t i = section.offset; i < section.offset + section.size; i += 3) bytes.at(i) = static_cast<char>(rng());
    ++scribbled;
  }
  ASSERT_GE(scribbled, 3u);
  writeAll(dir.path() / "corrupt", bytes.data(), bytes.size());
  Symbolizer symbolizer(isolated());
  SymbolizedFrame frame = symbolizer.resolve({(dir.path() / "corrupt").string(), ""}, offsetOf(fx("fx_pie"), kAllocate));
  // The symbol table is intact, so the function is still known even if the line table is garbage.
  EXPECT_EQ(frame.status, FrameStatus::Resolved) << frame.reason;
  EXPECT_EQ(frame.outermost().function, kAllocateDemangled);
}

TEST(SymbolizerCache, ModuleOpenedOnceAndDwarfParsedLazily) {
  Symbolizer symbolizer(isolated());
  EXPECT_EQ(symbolizer.stats().elfOpens, 0u);
  const ModuleRef module{fx("fx_pie"), ""};
  const uint64_t a = offsetOf(fx("fx_pie"), kAllocate);
  const uint64_t b = offsetOf(fx("fx_pie"), "fixture_c_function");

  // A miss outside the image indexes the ELF file but needs no DWARF.
  EXPECT_EQ(symbolizer.resolve(module, 1u << 30).status, FrameStatus::OutsideImage);
  EXPECT_EQ(symbolizer.stats().elfOpens, 1u);
  EXPECT_EQ(symbolizer.stats().dwarfLoads, 0u);

  EXPECT_EQ(symbolizer.resolve(module, a).status, FrameStatus::Resolved);
  EXPECT_EQ(symbolizer.resolve(module, b).status, FrameStatus::Resolved);
  EXPECT_EQ(symbolizer.resolve(module, a).outermost().function, kAllocateDemangled);
  EXPECT_EQ(symbolizer.stats().elfOpens, 1u);
  EXPECT_EQ(symbolizer.stats().dwarfLoads, 1u);
  EXPECT_EQ(symbolizer.stats().modulesIndexed, 1u);

  // Failures are cached too.
  symbolizer.resolve({"/nonexistent/x", ""}, 0);
  symbolizer.resolve({"/nonexistent/x", ""}, 0);
  EXPECT_EQ(symbolizer.stats().modulesIndexed, 2u);

  // Same path with another recorded build-id is another cache entry.
  symbolizer.resolve({fx("fx_pie"), bytesFromHex(FX_BUILD_ID_B)}, a);
  EXPECT_EQ(symbolizer.stats().modulesIndexed, 3u);
  EXPECT_EQ(symbolizer.stats().elfOpens, 2u);
}
