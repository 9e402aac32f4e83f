#include <gtest/gtest.h>

#include <sys/sysmacros.h>
#include <unistd.h>

#include "recorder/live_status.h"
#include "recorder/options.h"
#include "recorder/proc_maps.h"

namespace heaptrail::recorder {
namespace {

using Action = ParsedCommandLine::Action;

ParsedCommandLine parse(std::vector<std::string> args) { return parseRecordOptions(args, "heaptrail-record"); }

TEST(RecordOptions, PidAndOutput) {
  const auto p = parse({"-p", "1234", "-o", "app.htr", "--duration", "30s"});
  ASSERT_EQ(p.action, Action::Record) << p.message;
  EXPECT_EQ(p.options.pid, 1234);
  EXPECT_EQ(p.options.output, "app.htr");
  EXPECT_EQ(p.options.durationNs, 30'000'000'000u);
  EXPECT_TRUE(p.options.command.empty());
}

TEST(RecordOptions, CommandAfterDashDashKeepsItsOwnOptions) {
  const auto p = parse({"-o", "x.htr", "--", "./app", "-p", "--flag", "--", "tail"});
  ASSERT_EQ(p.action, Action::Record) << p.message;
  EXPECT_FALSE(p.options.pid.has_value());
  EXPECT_EQ(p.options.command, (std::vector<std::string>{"./app", "-p", "--flag", "--", "tail"}));
}

TEST(RecordOptions, SizesDepthAndRing) {
  const auto p = parse({"-p", "1", "--min-size", "1k", "--max-size", "4M", "--stack-depth", "16",
                        "--ringbuf-size", "8M", "--obj", "/lib/libc.so.6"});
  ASSERT_EQ(p.action, Action::Record) << p.message;
  EXPECT_EQ(p.options.minSize, 1024u);
  EXPECT_EQ(p.options.maxSize, 4u << 20);
  EXPECT_EQ(p.options.stackDepth, 16u);
  EXPECT_EQ(p.options.ringBufferBytes, 8u << 20);
  EXPECT_EQ(p.options.allocatorObject, "/lib/libc.so.6");
}

TEST(RecordOptions, HelpHasExamples) {
  const auto p = parse({"--help"});
  ASSERT_EQ(p.action, Action::ShowHelp);
  EXPECT_NE(p.message.find("Examples:"), std::string::npos);
  EXPECT_NE(p.message.find("-- ./app"), std::string::npos);
  EXPECT_NE(p.message.find("--ringbuf-size"), std::string::npos);
}

TEST(RecordOptions, UsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},                                         // nothing to record
      {"-p", "1", "--", "./app"},                 // both
      {"-p", "0"},                                // bad pid
      {"-p", "abc"},                              // not a number
      {"-p", "1", "--duration", "soon"},          // bad duration
      {"-p", "1", "--stack-depth", "0"},          // out of range
      {"-p", "1", "--stack-depth", "500"},        // out of range
      {"-p", "1", "--ringbuf-size", "3000"},      // not a power of two
      {"-p", "1", "--min-size", "2M", "--max-size", "1M"},
      {"-p", "1", "--bogus"},                     // unknown option
      {"--"},                                     // no command
      {"-p", "1", "-d", ""},                      // an empty duration is not "no limit"
      {"-p", "1", "-o", ""},                      // no file name
      {"-p", "1", "extra"},                       // positional arguments are not a command
      {"-o", "t.htr", "./app"},                   // (the command goes after --)
      {"-p", "1", "--user", "nobody"},            // --user is for a started command
      {"--user", "", "--", "./app"},
  };
  for (const auto& args : bad) {
    const auto p = parse(args);
    EXPECT_EQ(p.action, Action::UsageError) << "accepted: " << ::testing::PrintToString(args);
    EXPECT_NE(p.message.find("heaptrail-record: "), std::string::npos);
    EXPECT_NE(p.message.find("--help"), std::string::npos);
  }
}

TEST(RecordOptions, ExtraArgumentsAreNamed) {
  const auto p = parse({"-p", "1", "stray"});
  ASSERT_EQ(p.action, Action::UsageError);
  EXPECT_NE(p.message.find("unexpected argument 'stray'"), std::string::npos) << p.message;
  EXPECT_NE(p.message.find("after --"), std::string::npos) << p.message;
}

TEST(RecordOptions, UserAndStandardOutput) {
  const auto p = parse({"--user", "nobody", "-o", "-", "--", "./app"});
  ASSERT_EQ(p.action, Action::Record) << p.message;
  EXPECT_EQ(p.options.user, "nobody");
  EXPECT_TRUE(writesToStdout(p.options));
  EXPECT_TRUE(writesToStdout(parse({"-p", "1", "-o", "/dev/stdout"}).options));
  EXPECT_FALSE(writesToStdout(parse({"-p", "1", "-o", "t.htr"}).options));
}

TEST(ProcMaps, ParsesLines) {
  const auto maps = parseMaps(
      "55d0c3a00000-55d0c3a01000 r--p 00000000 08:01 1234                       /usr/bin/app\n"
      "55d0c3a01000-55d0c3a02000 r-xp 00001000 08:01 1234                       /usr/bin/app\n"
      "7ffd1b7f0000-7ffd1b811000 rw-p 00000000 00:00 0                          [stack]\n"
      "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
      "7f0000002000-7f0000003000 r-xp 00000000 08:01 99   /tmp/with space (deleted)\n"
      "garbage line\n");
  ASSERT_EQ(maps.size(), 5u);
  EXPECT_EQ(maps[1].start, 0x55d0c3a01000u);
  EXPECT_EQ(maps[1].end, 0x55d0c3a02000u);
  EXPECT_TRUE(maps[1].executable);
  EXPECT_FALSE(maps[1].writable);
  EXPECT_EQ(maps[1].offset, 0x1000u);
  EXPECT_EQ(maps[1].inode, 1234u);
  EXPECT_EQ(maps[1].device, makedev(8, 1));
  EXPECT_EQ(maps[1].path, "/usr/bin/app");
  EXPECT_EQ(maps[2].path, "[stack]");
  EXPECT_EQ(maps[3].path, "");
  EXPECT_EQ(maps[4].path, "/tmp/with space (deleted)");
}

}  // namespace
}  // namespace heaptrail::recorder

TEST(RecordOptions, QuietSilencesTheLiveStatus) {
  EXPECT_FALSE(heaptrail::recorder::parseRecordOptions({"-p", "1"}, "heaptrail-record").options.quiet);
  EXPECT_TRUE(heaptrail::recorder::parseRecordOptions({"-q", "-p", "1"}, "heaptrail-record").options.quiet);
  EXPECT_TRUE(heaptrail::recorder::parseRecordOptions({"--quiet", "-p", "1"}, "heaptrail-record").options.quiet);
}

// The live line: one line rewritten in place, the lost count in bold red once any are
// lost, nothing at all when disabled (not a terminal, or --quiet), erased before the summary.
TEST(LiveStatus, WritesOneLineInPlaceAndErasesIt) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  heaptrail::recorder::RecordSummary p;
  p.events = 5000;
  p.durationNs = 2'000'000'000;
  p.bytesWritten = 3 << 20;
  {
    heaptrail::recorder::LiveStatus off(fds[1], false);
    off.update(p);
  }
  {
    heaptrail::recorder::LiveStatus on(fds[1], true);
    on.update(p);
    p.events = 8000;
    p.durationNs = 3'000'000'000;
    p.lost = 7;
    on.update(p);
    on.clear();
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  EXPECT_EQ(out.find('\n'), std::string::npos) << "never a new line: " << out;
  EXPECT_EQ(out.rfind("\r\033[K", 0), 0u) << out;
  EXPECT_NE(out.find("5000 events (2500/s), 3.0 MiB written, 0 lost"), std::string::npos) << out;
  EXPECT_NE(out.find("8000 events (3000/s)"), std::string::npos) << "the rate is of the last interval: " << out;
  EXPECT_NE(out.find("\033[1;31m7 lost\033[0m"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\r\033[K")) << "erased before the summary";
}
