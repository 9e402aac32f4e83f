// `heaptrail analyze` on a trace whose binary is not on this machine: with $DEBUGINFOD_URLS
// naming a real server (started here) the leak's frame gets its function and file:line
// from the server; with --no-debuginfod it stays module+offset.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "common/hex.h"
#include "tests/analyzer/synthetic_trace.h"
#include "tests/support/debuginfod_server.h"
#include "tests/support/elf_oracle.h"
#include "tests/support/run_command.h"
#include "tests/support/source_markers.h"

namespace fs = std::filesystem;
using namespace heaptrail::testing;

namespace {

std::string fx(const std::string& relative) { return std::string(FX_DIR) + "/" + relative; }

}  // namespace

TEST(DebuginfodEndToEnd, LeakFrameResolvesThroughTheServerOnly) {
  const std::string id = FX_BUILD_ID_A;
  TempDir dir;
  fs::create_directories(dir / "served");
  fs::copy_file(fx("stripped/fx_ida"), dir / "served" / "binary");
  fs::copy_file(fx("debugdir/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug"), dir / "served" / "debug");
  DebuginfodServer server(dir / "served", dir.path(), 2);
  ASSERT_EQ(server.error(), "");
  ScopedEnv urls("DEBUGINFOD_URLS", server.url());
  ScopedEnv cache("DEBUGINFOD_CACHE_PATH", (dir / "cache").string());

  const uint64_t offset = ElfOracle(fx("fx_ida")).symbolOffset("fx_mark_alloc_here").value_or(0);
  ASSERT_NE(offset, 0u);
  constexpr uint64_t kBase = 0x7f0000000000;
  const fs::path trace = dir / "t.htr";
  {
    SyntheticTrace t(trace);
    t.mapping(0, kBase, kBase + 0x100000, 0, "/device/only/fx_ida", heaptrail::common::bytesFromHex(id))
        .stack(1, {kBase + offset + 1})
        .malloc(1 * kMs, 0x1000, 123, 1)
        .finish(2 * kMs);
  }
  const std::string line =
      "fixture_main.cpp:" + std::to_string(markerLine(FX_MAIN_SOURCE, "LINE:alloc_here"));

  const auto with = runCommand({HEAPTRAIL_BIN, "analyze", trace.string()});
  ASSERT_EQ(with.exitCode, 0) << with.err;
  EXPECT_NE(with.out.find("heaptrail_fixture::Allocator::allocate"), std::string::npos) << with.out;
  EXPECT_NE(with.out.find(line), std::string::npos) << with.out;
  EXPECT_NE(with.err.find("2 binaries or debug files came from debuginfod"), std::string::npos) << with.err;

  const auto without = runCommand({HEAPTRAIL_BIN, "analyze", trace.string(), "--no-debuginfod"});
  ASSERT_EQ(without.exitCode, 0) << without.err;
  EXPECT_EQ(without.out.find(line), std::string::npos) << without.out;
  EXPECT_NE(without.out.find("fx_ida+0x"), std::string::npos) << without.out;
}
