// The recorder's ELF index on a 32-bit arm library: Thumb functions (st_value with bit 0
// set) are flagged, since a 32-bit arm kernel cannot place a uprobe on Thumb code, and
// their address and file offset are the instruction's, without the Thumb bit.
#include <gtest/gtest.h>

#include <filesystem>

#include "recorder/elf_info.h"

namespace heaptrail::recorder {
namespace {

TEST(Arm32Elf, ThumbFunctionsAreFlaggedAndArmOnesAreNot) {
  const std::filesystem::path library = ARM32_FUNCTIONS_LIB;
  if (!std::filesystem::exists(library)) GTEST_SKIP() << "arm-linux-gnueabihf-gcc is not installed";
  const auto index = indexFunctions(library, {"thumb_alloc", "arm_alloc"});
  ASSERT_TRUE(index);
  ASSERT_EQ(index->functions.count("thumb_alloc"), 1u);
  ASSERT_EQ(index->functions.count("arm_alloc"), 1u);
  const auto& thumb = index->functions.at("thumb_alloc");
  const auto& arm = index->functions.at("arm_alloc");
  EXPECT_TRUE(thumb.thumb);
  EXPECT_EQ(thumb.vaddr & 1, 0u) << "the Thumb bit is not part of the address";
  EXPECT_FALSE(arm.thumb);
  EXPECT_EQ(arm.vaddr & 3, 0u);
  // A shared library's text is mapped at offset 0: file offset and address agree.
  EXPECT_EQ(thumb.fileOffset, thumb.vaddr);
  EXPECT_EQ(arm.fileOffset, arm.vaddr);
}

}  // namespace
}  // namespace heaptrail::recorder
