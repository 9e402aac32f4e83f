#include <gtest/gtest.h>

#include "common/units.h"

namespace heaptrail::common {
namespace {

TEST(Units, ParsesDurations) {
  EXPECT_EQ(parseDuration("60s"), 60'000'000'000u);
  EXPECT_EQ(parseDuration("250ms"), 250'000'000u);
  EXPECT_EQ(parseDuration("5m"), 300'000'000'000u);
  EXPECT_EQ(parseDuration("1h"), 3'600'000'000'000u);
  EXPECT_EQ(parseDuration("1.5s"), 1'500'000'000u);
  EXPECT_EQ(parseDuration("30"), 30'000'000'000u);
  EXPECT_EQ(parseDuration("10us"), 10'000u);
  EXPECT_FALSE(parseDuration("").has_value());
  EXPECT_FALSE(parseDuration("s").has_value());
  EXPECT_FALSE(parseDuration("-5s").has_value());
  EXPECT_FALSE(parseDuration("5 parsecs").has_value());
  EXPECT_FALSE(parseDuration("1e30h").has_value());
}

TEST(Units, ParsesSizes) {
  EXPECT_EQ(parseSize("4096"), 4096u);
  EXPECT_EQ(parseSize("64k"), 65536u);
  EXPECT_EQ(parseSize("64KiB"), 65536u);
  EXPECT_EQ(parseSize("4M"), 4u << 20);
  EXPECT_EQ(parseSize("1G"), 1u << 30);
  EXPECT_FALSE(parseSize("lots").has_value());
  EXPECT_FALSE(parseSize("4X").has_value());
}

TEST(Units, Formats) {
  EXPECT_EQ(formatDuration(12'300'000'000), "12.3 s");
  EXPECT_EQ(formatDuration(450'000'000), "450.0 ms");
  EXPECT_EQ(formatBytes(123), "123 B");
  EXPECT_EQ(formatBytes(1536), "1.5 KiB");
  EXPECT_EQ(formatBytes(3u << 20), "3.0 MiB");
}

}  // namespace
}  // namespace heaptrail::common
