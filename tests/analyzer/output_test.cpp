// Text and JSON output of symbolized frames: inline chains, unknown functions, and text
// from the traced machine that is not valid UTF-8.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "analyzer/json_output.h"
#include "analyzer/text_output.h"

namespace heaptrail::analyzer {
namespace {

using Json = nlohmann::json;

Frame resolvedFrame(uint64_t address, uint64_t offset, std::vector<symbols::SourceFrame> sources) {
  Frame f;
  f.address = address;
  f.mapped = true;
  f.module = "/usr/lib/libdemo.so";
  f.buildId = "\x01\xab";
  f.offset = offset;
  f.symbolized = true;
  f.symbol.status = symbols::FrameStatus::Resolved;
  f.symbol.frames = std::move(sources);
  return f;
}

// An allocation in calloc inlined into allocate_dtv, called from a function without a name.
StackReport inlinedStack() {
  StackReport stack;
  stack.stackId = 7;
  stack.known = true;
  stack.frames.push_back(resolvedFrame(0x7f0000011700, 0x10cb5,
                                       {{"calloc", "./elf/../include/rtld-malloc.h", 44},
                                        {"allocate_dtv", "./elf/../elf/dl-tls.c", 401}}));
  stack.frames.push_back(resolvedFrame(0x7f0000012000, 0x11a2f, {{"", "/src/app/main.c", 12}}));
  Frame unresolved;
  unresolved.address = 0x400100;
  unresolved.mapped = true;
  unresolved.module = "/opt/app";
  unresolved.offset = 0x100;
  unresolved.symbolized = true;
  unresolved.symbol.status = symbols::FrameStatus::FileMissing;
  unresolved.symbol.reason = "cannot open /opt/app";
  stack.frames.push_back(unresolved);
  return stack;
}

TEST(Output, TextShowsInlinedCallsFirstAndModuleOffsetWhenTheFunctionIsUnknown) {
  std::ostringstream out;
  writeStackText(out, inlinedStack());
  EXPECT_EQ(out.str(),
            "    #0 calloc include/rtld-malloc.h:44 (inlined)\n"
            "    #1 allocate_dtv elf/dl-tls.c:401\n"
            "    #2 libdemo.so+0x11a2f /src/app/main.c:12\n"
            "    #3 app+0x100 (FileMissing: cannot open /opt/app)\n");
}

TEST(Output, JsonHasOneEntryPerFunctionWithInlinedMarked) {
  LeakReport report;
  report.leaks.push_back({1, 64, 1, 0, 0, inlinedStack()});
  std::ostringstream out;
  writeJson(out, report);
  const Json doc = Json::parse(out.str());
  const Json& frames = doc.at("leaks").at(0).at("frames");
  ASSERT_EQ(frames.size(), 4u) << out.str();

  EXPECT_EQ(frames.at(0).at("function"), "calloc");
  EXPECT_EQ(frames.at(0).at("file"), "./elf/../include/rtld-malloc.h");  // as the DWARF names it
  EXPECT_EQ(frames.at(0).at("line"), 44);
  EXPECT_EQ(frames.at(0).at("inlined"), true);
  EXPECT_EQ(frames.at(1).at("function"), "allocate_dtv");
  EXPECT_EQ(frames.at(1).at("line"), 401);
  EXPECT_EQ(frames.at(1).at("inlined"), false);
  for (int i : {0, 1}) {  // both describe the same return address
    EXPECT_EQ(frames.at(i).at("address"), "0x7f0000011700");
    EXPECT_EQ(frames.at(i).at("module"), "/usr/lib/libdemo.so");
    EXPECT_EQ(frames.at(i).at("build_id"), "01ab");
    EXPECT_EQ(frames.at(i).at("offset"), 0x10cb5);
    EXPECT_TRUE(frames.at(i).at("unresolved").is_null());
  }
  EXPECT_TRUE(frames.at(2).at("function").is_null());
  EXPECT_EQ(frames.at(2).at("file"), "/src/app/main.c");
  EXPECT_EQ(frames.at(2).at("inlined"), false);
  EXPECT_TRUE(frames.at(3).at("function").is_null());
  EXPECT_EQ(frames.at(3).at("inlined"), false);
  EXPECT_EQ(frames.at(3).at("unresolved"), "FileMissing: cannot open /opt/app");
}

TEST(Output, JsonEscapesControlCharactersAndReplacesInvalidUtf8) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\"b\\c\n\t\x01", "a\"b\\c\n\t\x01"},                    // escaped, read back exactly
      {"caf\xc3\xa9", "caf\xc3\xa9"},                            // valid UTF-8 kept as it is
      {"\xc3", "\xef\xbf\xbd"},                                  // a cut sequence: U+FFFD
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  // a surrogate: U+FFFD per byte
  };
  StackReport stack;
  stack.stackId = 1;
  stack.known = true;
  for (const auto& [raw, expected] : cases) stack.frames.push_back(resolvedFrame(0x1000, 0x10, {{raw, raw, 1}}));
  LeakReport report;
  report.leaks.push_back({1, 8, 1, 0, 0, stack});
  std::ostringstream out;
  writeJson(out, report);
  EXPECT_NE(out.str().find(R"("a\"b\\c\n\t\u0001")"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("\"caf\xc3\xa9\""), std::string::npos) << out.str();

  Json doc;
  ASSERT_NO_THROW(doc = Json::parse(out.str())) << out.str();  // the parser rejects invalid UTF-8
  const Json& frames = doc.at("leaks").at(0).at("frames");
  ASSERT_EQ(frames.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(frames.at(i).at("function").get<std::string>(), cases[i].second) << i;
    EXPECT_EQ(frames.at(i).at("file").get<std::string>(), cases[i].second) << i;
  }
}

}  // namespace
}  // namespace heaptrail::analyzer
