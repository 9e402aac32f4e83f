// The symbolizer asks a real debuginfod server (started here on localhost) for what is not
// found locally, by build-id: a separate debug file for a stripped binary, and the binary
// itself when the recorded file is missing. Each frame resolves only through the server.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "analyzer/symbols/symbolizer.h"
#include "common/hex.h"
#include "tests/support/debuginfod_server.h"
#include "tests/support/elf_oracle.h"
#include "tests/support/source_markers.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using heaptrail::common::bytesFromHex;
using heaptrail::symbols::FrameStatus;
using heaptrail::symbols::SymbolizedFrame;
using heaptrail::symbols::Symbolizer;
using heaptrail::symbols::SymbolizerOptions;
using heaptrail::testing::DebuginfodServer;
using heaptrail::testing::ElfOracle;
using heaptrail::testing::ScopedEnv;
using heaptrail::testing::TempDir;

namespace {

constexpr const char* kAllocate = "_ZN17heaptrail_fixture9Allocator8allocateEm";
constexpr const char* kAllocateDemangled = "heaptrail_fixture::Allocator::allocate(unsigned long)";

std::string fx(const std::string& relative) { return std::string(FX_DIR) + "/" + relative; }

std::string debugFileA() {
  const std::string id = FX_BUILD_ID_A;
  return fx("debugdir/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug");
}

uint64_t allocateOffset() {
  static const ElfOracle oracle(fx("fx_ida"));
  return oracle.symbolOffset(kAllocate).value_or(0);
}

SymbolizerOptions noLocalDebugFiles(bool debuginfod) {
  SymbolizerOptions options;
  options.systemDebugDir = false;
  options.debuginfod = debuginfod;
  return options;
}

// A server for `files` (copied into its directory), and the environment pointing at it
// with a private client cache.
class ServedFiles {
 public:
  explicit ServedFiles(const std::vector<std::string>& files) {
    fs::create_directories(dir_ / "served");
    for (size_t i = 0; i < files.size(); ++i)
      fs::copy_file(files[i], dir_ / "served" / ("file" + std::to_string(i)));
    server_.emplace(dir_ / "served", dir_.path(), files.size());
    urls_.emplace("DEBUGINFOD_URLS", server_->url());
    cache_.emplace("DEBUGINFOD_CACHE_PATH", (dir_ / "cache").string());
  }
  const std::string& error() const { return server_->error(); }

 private:
  TempDir dir_;
  std::optional<DebuginfodServer> server_;
  std::optional<ScopedEnv> urls_, cache_;
};

}  // namespace

TEST(Debuginfod, StrippedBinaryGetsItsDebugFileFromTheServer) {
  ServedFiles served({debugFileA()});
  ASSERT_EQ(served.error(), "");
  const heaptrail::symbols::ModuleRef stripped{fx("stripped/fx_ida"), bytesFromHex(FX_BUILD_ID_A)};

  Symbolizer without(noLocalDebugFiles(false));
  EXPECT_EQ(without.resolve(stripped, allocateOffset()).status, FrameStatus::NoSymbols)
      << "nothing local resolves it: only the server can";

  Symbolizer with(noLocalDebugFiles(true));
  SymbolizedFrame frame = with.resolve(stripped, allocateOffset());
  EXPECT_EQ(frame.status, FrameStatus::Resolved) << frame.reason;
  EXPECT_EQ(frame.outermost().function, kAllocateDemangled);
  EXPECT_EQ(frame.outermost().line, heaptrail::testing::markerLine(FX_MAIN_SOURCE, "LINE:allocate_def"));
  EXPECT_EQ(fs::path(frame.outermost().file), fs::path(FX_MAIN_SOURCE).lexically_normal());
  EXPECT_EQ(with.stats().debuginfodFiles, 1u);
}

TEST(Debuginfod, MissingBinaryIsFetchedWithItsDebugFile) {
  ServedFiles served({fx("stripped/fx_ida"), debugFileA()});
  ASSERT_EQ(served.error(), "");
  Symbolizer symbolizer(noLocalDebugFiles(true));
  SymbolizedFrame frame =
      symbolizer.resolve({"/nonexistent/fx_ida", bytesFromHex(FX_BUILD_ID_A)}, allocateOffset());
  EXPECT_EQ(frame.status, FrameStatus::Resolved) << frame.reason;
  EXPECT_EQ(frame.outermost().function, kAllocateDemangled);
  EXPECT_EQ(frame.outermost().line, heaptrail::testing::markerLine(FX_MAIN_SOURCE, "LINE:allocate_def"));
  EXPECT_EQ(symbolizer.stats().debuginfodFiles, 2u) << "the executable, then its debug file";
}

TEST(Debuginfod, BuildIdTheServerLacksSaysSo) {
  ServedFiles served({debugFileA()});
  ASSERT_EQ(served.error(), "");
  Symbolizer symbolizer(noLocalDebugFiles(true));
  SymbolizedFrame frame =
      symbolizer.resolve({"/nonexistent/fx_idb", bytesFromHex(FX_BUILD_ID_B)}, allocateOffset());
  EXPECT_EQ(frame.status, FrameStatus::FileMissing);
  EXPECT_NE(frame.reason.find("debuginfod: no "), std::string::npos) << frame.reason;
  EXPECT_NE(frame.reason.find(FX_BUILD_ID_B), std::string::npos) << frame.reason;
  EXPECT_EQ(symbolizer.stats().debuginfodFiles, 0u);
}
