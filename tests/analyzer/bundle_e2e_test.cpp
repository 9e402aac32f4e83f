// Record on the device, bundle there, analyze on the workstation: `heaptrail-record
// bundle` packs the (stripped) binary a trace names, checked by build-id; the workstation
// no longer has the file, and `heaptrail analyze --bundle` with the debug file found by
// build-id resolves the leak to function and file:line.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "common/hex.h"
#include "tests/analyzer/synthetic_trace.h"
#include "tests/support/elf_oracle.h"
#include "tests/support/run_command.h"
#include "tests/support/source_markers.h"

namespace fs = std::filesystem;
using namespace heaptrail::testing;

namespace {

std::string fx(const std::string& relative) { return std::string(FX_DIR) + "/" + relative; }

}  // namespace

TEST(BundleEndToEnd, StrippedDeviceBinaryResolvesFromTheBundleAndADebugDir) {
  const std::string idA = heaptrail::common::bytesFromHex(FX_BUILD_ID_A);
  const std::string idB = heaptrail::common::bytesFromHex(FX_BUILD_ID_B);
  TempDir dir;
  fs::create_directories(dir / "device");
  const fs::path binary = dir / "device" / "app";
  const fs::path rebuilt = dir / "device" / "rebuilt";
  fs::copy_file(fx("stripped/fx_ida"), binary);
  fs::copy_file(fx("fx_idb"), rebuilt);  // the trace says build-id A: it changed since

  const uint64_t offset = ElfOracle(fx("fx_ida")).symbolOffset("fx_mark_alloc_here").value_or(0);
  ASSERT_NE(offset, 0u);
  constexpr uint64_t kBase = 0x7f0000000000, kOther = 0x7f1000000000;
  const fs::path trace = dir / "app.htr";
  {
    SyntheticTrace t(trace);
    t.mapping(0, kBase, kBase + 0x100000, 0, binary.string(), idA)
        .mapping(0, kOther, kOther + 0x100000, 0, rebuilt.string(), idB + "x")
        .mapping(0, 0x7fff0000, 0x7fff2000, 0, "[vdso]", idB)
        .mapping(0, 0x7f2000000000, 0x7f2000100000, 0, (dir / "device" / "gone.so").string(), idB)
        .stack(1, {kBase + offset + 1})
        .malloc(1 * kMs, 0x1000, 123, 1)
        .finish(2 * kMs);
  }

  const auto packed = runCommand({HEAPTRAIL_RECORD_BIN, "bundle", trace.string(), "-o", (dir / "app.bundle").string()});
  ASSERT_EQ(packed.exitCode, 0) << packed.err;
  EXPECT_NE(packed.err.find("bundle: 1 files"), std::string::npos) << packed.err;
  EXPECT_NE(packed.err.find("not packed: " + rebuilt.string() + ": changed since the recording"), std::string::npos)
      << packed.err;
  EXPECT_NE(packed.err.find("not packed: " + (dir / "device" / "gone.so").string()), std::string::npos) << packed.err;
  EXPECT_EQ(fs::status(dir / "app.bundle").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  fs::remove(binary);  // the workstation does not have the device's files
  const std::string line = "fixture_main.cpp:" + std::to_string(markerLine(FX_MAIN_SOURCE, "LINE:alloc_here"));
  const auto with = runCommand({HEAPTRAIL_BIN, "analyze", trace.string(), "--no-debuginfod", "--bundle",
                                (dir / "app.bundle").string(), "--debug-dir", fx("debugdir")});
  ASSERT_EQ(with.exitCode, 0) << with.err;
  EXPECT_NE(with.out.find("heaptrail_fixture::Allocator::allocate"), std::string::npos) << with.out;
  EXPECT_NE(with.out.find(line), std::string::npos) << with.out;

  const auto without = runCommand({HEAPTRAIL_BIN, "analyze", trace.string(), "--no-debuginfod", "--debug-dir", fx("debugdir")});
  ASSERT_EQ(without.exitCode, 0) << without.err;
  EXPECT_EQ(without.out.find(line), std::string::npos) << without.out;
}

TEST(BundleEndToEnd, UsageAndErrors) {
  TempDir dir;
  EXPECT_EQ(runCommand({HEAPTRAIL_RECORD_BIN, "bundle"}).exitCode, 2);
  EXPECT_EQ(runCommand({HEAPTRAIL_RECORD_BIN, "bundle", "a.htr", "--frobnicate"}).exitCode, 2);
  const auto help = runCommand({HEAPTRAIL_RECORD_BIN, "bundle", "--help"});
  EXPECT_EQ(help.exitCode, 0);
  EXPECT_NE(help.out.find("Examples:"), std::string::npos);
  const auto missing = runCommand({HEAPTRAIL_RECORD_BIN, "bundle", (dir / "none.htr").string()});
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_NE(missing.err.find("none.htr"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir / "none.bundle"));
  const auto noBundle = runCommand({HEAPTRAIL_BIN, "analyze", "x.htr", "--bundle", (dir / "none.bundle").string()});
  EXPECT_EQ(noBundle.exitCode, 1);
  EXPECT_NE(noBundle.err.find("cannot open bundle"), std::string::npos) << noBundle.err;
}
