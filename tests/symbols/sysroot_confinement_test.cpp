// --sysroot confines every path a trace (or the sysroot itself, which may come with the
// bug report) names: ".." in a recorded path, absolute symbolic links inside the sysroot,
// build-id and .gnu_debuglink lookups all resolve beneath it. And nothing is waited on.
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "analyzer/symbols/debug_file_locator.h"
#include "analyzer/symbols/symbolizer.h"
#include "common/hex.h"
#include "tests/support/elf_oracle.h"
#include "tests/support/temp_dir.h"

namespace heaptrail::symbols {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr const char* kAllocateDemangled = "heaptrail_fixture::Allocator::allocate(unsigned long)";

std::string fx(const std::string& relative) { return std::string(FX_DIR) + "/" + relative; }

uint64_t allocateOffset() {
  static const testing::ElfOracle oracle(fx("fx_ida"));
  return oracle.symbolOffset("_ZN17heaptrail_fixture9Allocator8allocateEm").value_or(0);
}

void place(const fs::path& from, const fs::path& to) {
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

void link(const fs::path& target, const fs::path& at) {
  fs::create_directories(at.parent_path());
  fs::create_symlink(target, at);
}

SymbolizerOptions withSysroot(const fs::path& sysroot, bool systemDebugDir = false) {
  SymbolizerOptions options;
  options.sysroot = sysroot;
  options.systemDebugDir = systemDebugDir;
  return options;
}

const std::string kIdA = common::bytesFromHex(FX_BUILD_ID_A);

// Outside the sysroot: the build the trace names (a file root could read). Inside it, at
// the place the path really leads to: another build. Confinement shows as a build-id
// mismatch; escaping, as a resolved frame.
class SysrootConfinement : public ::testing::Test {
 protected:
  void SetUp() override {
    sysroot_ = tmp_.path() / "sysroot";
    fs::create_directories(sysroot_);
    place(fx("fx_ida"), tmp_.path() / "outside" / "secret.so");
  }
  SymbolizedFrame resolve(const std::string& recorded, bool systemDebugDir = false) {
    Symbolizer symbolizer(withSysroot(sysroot_, systemDebugDir));
    return symbolizer.resolve({recorded, kIdA}, allocateOffset());
  }

  TempDir tmp_;
  fs::path sysroot_;
};

TEST_F(SysrootConfinement, DotDotInARecordedPathStaysInside) {
  const std::string recorded = "/../../../../../../../../" + (tmp_.path() / "outside" / "secret.so").relative_path().string();
  const auto escaped = resolve(recorded);
  EXPECT_FALSE(escaped.resolved()) << "read " << escaped.usedFile;
  EXPECT_EQ(escaped.status, FrameStatus::FileMissing) << escaped.reason;

  // Beneath the sysroot, ".." stops at its root: the same path finds the file there.
  place(fx("fx_idb"), sysroot_ / (tmp_.path() / "outside" / "secret.so").relative_path());
  const auto inside = resolve(recorded);
  EXPECT_EQ(inside.status, FrameStatus::BuildIdMismatch) << inside.reason;
}

TEST_F(SysrootConfinement, AbsoluteSymlinkInsideResolvesBeneathTheSysroot) {
  const fs::path outside = tmp_.path() / "outside" / "secret.so";
  link(outside, sysroot_ / "usr/lib/libfoo.so");
  const auto escaped = resolve("/usr/lib/libfoo.so");
  EXPECT_FALSE(escaped.resolved()) << "followed the link out of the sysroot to " << escaped.usedFile;

  place(fx("fx_idb"), sysroot_ / outside.relative_path());
  EXPECT_EQ(resolve("/usr/lib/libfoo.so").status, FrameStatus::BuildIdMismatch);

  // What such links are for: a library that points to its real name within the image.
  place(fx("fx_ida"), sysroot_ / "opt/real/libbar.so.1.2");
  link("/opt/real/libbar.so.1.2", sysroot_ / "usr/lib/libbar.so");
  const auto good = resolve("/usr/lib/libbar.so");
  EXPECT_TRUE(good.resolved()) << good.reason;
  EXPECT_EQ(good.outermost().function, kAllocateDemangled);
}

TEST_F(SysrootConfinement, BuildIdLookupInTheSysrootStaysInside) {
  // A stripped binary whose debug file, by build-id in the sysroot's /usr/lib/debug, is a
  // link to the real debug file outside.
  place(fx("stripped/fx_ida"), sysroot_ / "usr/bin/app");
  const std::string hex = FX_BUILD_ID_A;
  link(fx("debugdir/.build-id/" + hex.substr(0, 2) + "/" + hex.substr(2) + ".debug"),
       sysroot_ / "usr/lib/debug/.build-id" / hex.substr(0, 2) / (hex.substr(2) + ".debug"));
  const auto frame = resolve("/usr/bin/app", true);
  EXPECT_NE(frame.outermost().function, kAllocateDemangled) << "symbols came from " << frame.usedFile;
  EXPECT_EQ(frame.usedFile.find(FX_DIR), std::string::npos) << frame.usedFile;
}

TEST_F(SysrootConfinement, FifoAtAMappingPathIsNotWaitedOn) {
  fs::create_directories(sysroot_ / "usr/lib");
  ASSERT_EQ(::mkfifo((sysroot_ / "usr/lib/libfifo.so").c_str(), 0600), 0);
  const auto frame = resolve("/usr/lib/libfifo.so");
  EXPECT_EQ(frame.status, FrameStatus::FileMissing);
  EXPECT_NE(frame.reason.find("not a regular file"), std::string::npos) << frame.reason;
}

TEST(DebugLinkNames, OnlyAPlainFileNameIsLookedFor) {
  const DebugFileLocator locator({"/debug"});
  EXPECT_TRUE(locator.debugFilesByDebugLink("/usr/lib/libx.so", "/usr/lib/libx.so", "../../etc/shadow").empty());
  EXPECT_TRUE(locator.debugFilesByDebugLink("/usr/lib/libx.so", "/usr/lib/libx.so", "/etc/shadow").empty());
  EXPECT_TRUE(locator.debugFilesByDebugLink("/usr/lib/libx.so", "/usr/lib/libx.so", "..").empty());
  // A recorded directory that climbs out is not looked for under the debug dirs.
  for (const auto& candidate : locator.debugFilesByDebugLink("/host/libx.so", "/../../etc/libx.so", "libx.debug"))
    EXPECT_EQ(candidate.string().find(".."), std::string::npos) << candidate;
  EXPECT_FALSE(locator.debugFilesByDebugLink("/usr/lib/libx.so", "/usr/lib/libx.so", "libx.debug").empty());
}

}  // namespace
}  // namespace heaptrail::symbols
