// The .debug_line reader on hand-assembled line programs (DWARF 4 and 5): file numbering,
// the default file register, and how paths are joined with the compilation directory.
#include <libdwarf/dwarf.h>

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "analyzer/symbols/line_table.h"

namespace heaptrail::symbols {
namespace {

class Bytes {
 public:
  Bytes& u8(uint8_t v) {
    data.push_back(v);
    return *this;
  }
  Bytes& u16(uint16_t v) { return u8(v & 0xff).u8(v >> 8); }
  Bytes& u32(uint32_t v) { return u16(v & 0xffff).u16(v >> 16); }
  Bytes& u64(uint64_t v) { return u32(static_cast<uint32_t>(v)).u32(static_cast<uint32_t>(v >> 32)); }
  Bytes& uleb(uint64_t v) {
    do {
      uint8_t b = v & 0x7f;
      v >>= 7;
      u8(v != 0 ? (b | 0x80) : b);
    } while (v != 0);
    return *this;
  }
  Bytes& sleb(int64_t v) {
    for (;;) {
      const uint8_t b = v & 0x7f;
      v >>= 7;
      const bool done = (v == 0 && (b & 0x40) == 0) || (v == -1 && (b & 0x40) != 0);
      u8(done ? b : (b | 0x80));
      if (done) return *this;
    }
  }
  Bytes& str(const std::string& s) {
    data.insert(data.end(), s.begin(), s.end());
    return u8(0);
  }
  Bytes& append(const Bytes& other) {
    data.insert(data.end(), other.data.begin(), other.data.end());
    return *this;
  }
  std::vector<uint8_t> data;
};

constexpr uint8_t kOpcodeBase = 13;

Bytes standardHeaderFields(int version) {
  Bytes h;
  h.u8(1);                 // minimum_instruction_length
  if (version >= 4) h.u8(1);  // maximum_operations_per_instruction
  h.u8(1).u8(static_cast<uint8_t>(-5)).u8(14).u8(kOpcodeBase);
  for (uint8_t len : {0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1}) h.u8(len);
  return h;
}

// Rows: 0x1000 with the default file register, 0x1010 in file `secondFile`, end at 0x1018.
Bytes program(uint64_t secondFile) {
  Bytes p;
  p.u8(0).uleb(9).u8(DW_LNE_set_address).u64(0x1000);
  p.u8(DW_LNS_advance_line).sleb(120);  // line 121
  p.u8(DW_LNS_copy);
  p.u8(DW_LNS_advance_pc).uleb(0x10);
  p.u8(DW_LNS_set_file).uleb(secondFile);
  p.u8(DW_LNS_advance_line).sleb(-100);  // line 21
  p.u8(DW_LNS_copy);
  p.u8(DW_LNS_advance_pc).uleb(8);
  p.u8(0).uleb(1).u8(DW_LNE_end_sequence);
  return p;
}

std::vector<uint8_t> unit(int version, const Bytes& headerRest, const Bytes& body) {
  Bytes afterLength;
  afterLength.u16(static_cast<uint16_t>(version));
  if (version >= 5) afterLength.u8(8).u8(0);  // address_size, segment_selector_size
  afterLength.u32(static_cast<uint32_t>(headerRest.data.size())).append(headerRest).append(body);
  Bytes all;
  all.u32(static_cast<uint32_t>(afterLength.data.size())).append(afterLength);
  return all.data;
}

LineTable parse(const std::vector<uint8_t>& line, std::string_view compDir, const std::vector<uint8_t>& lineStr = {}) {
  std::string error;
  auto table = LineTable::parse({line, lineStr, {}}, 0, compDir, error);
  EXPECT_TRUE(table.has_value()) << error;
  return table ? std::move(*table) : LineTable();
}

TEST(LineTable, Dwarf5FileZeroIsThePrimaryFileAndTheDefaultRegisterIsOne) {
  // glibc's pwd/getpwuid.c, compiled in "./pwd", has its code in ../nss/getXXbyYY.c; the
  // directories are in .debug_line_str, as GCC writes them.
  Bytes lineStr;
  lineStr.str("./pwd").str("../nss");  // offsets 0 and 6
  Bytes h = standardHeaderFields(5);
  h.u8(1).uleb(DW_LNCT_path).uleb(DW_FORM_line_strp);
  h.uleb(2).u32(0).u32(6);
  h.u8(2).uleb(DW_LNCT_path).uleb(DW_FORM_string).uleb(DW_LNCT_directory_index).uleb(DW_FORM_udata);
  h.uleb(2).str("getpwuid.c").uleb(0).str("getXXbyYY.c").uleb(1);
  const LineTable table = parse(unit(5, h, program(0)), "./pwd", lineStr.data);

  ASSERT_NE(table.fileName(0), nullptr);
  EXPECT_EQ(*table.fileName(0), "./pwd/getpwuid.c");  // directory 0 is the compilation directory
  ASSERT_NE(table.fileName(1), nullptr);
  EXPECT_EQ(*table.fileName(1), "./pwd/../nss/getXXbyYY.c");
  EXPECT_EQ(table.fileName(2), nullptr);

  const auto first = table.lookup(0x1005);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->file, 1u) << "the file register starts at 1 in DWARF 5 too";
  EXPECT_EQ(first->line, 121u);
  const auto second = table.lookup(0x1017);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->file, 0u);
  EXPECT_EQ(second->line, 21u);
  EXPECT_FALSE(table.lookup(0x1018).has_value()) << "end of the sequence";
  EXPECT_FALSE(table.lookup(0xfff).has_value());
}

TEST(LineTable, Dwarf4FilesFromOneAndDirectoryZeroIsTheCompilationDirectory) {
  Bytes h = standardHeaderFields(4);
  h.str("../nss").str("/usr/include").u8(0);  // include_directories
  h.str("getpwuid.c").uleb(0).uleb(0).uleb(0);
  h.str("getXXbyYY.c").uleb(1).uleb(0).uleb(0);
  h.str("stdio.h").uleb(2).uleb(0).uleb(0);
  h.str("/abs/x.h").uleb(1).uleb(0).uleb(0);
  h.u8(0);
  const LineTable table = parse(unit(4, h, program(2)), "./pwd");

  EXPECT_EQ(table.fileName(0), nullptr) << "DWARF 4 numbers files from 1";
  EXPECT_EQ(*table.fileName(1), "./pwd/getpwuid.c");
  EXPECT_EQ(*table.fileName(2), "./pwd/../nss/getXXbyYY.c");
  EXPECT_EQ(*table.fileName(3), "/usr/include/stdio.h");  // an absolute directory stands alone
  EXPECT_EQ(*table.fileName(4), "/abs/x.h");              // so does an absolute name

  EXPECT_EQ(table.lookup(0x1000)->file, 1u);
  EXPECT_EQ(table.lookup(0x1010)->file, 2u);
  EXPECT_EQ(table.lookup(0x1010)->line, 21u);
}

TEST(LineTable, TombstonedSequencesAreDropped) {
  Bytes h = standardHeaderFields(4);
  h.u8(0).str("a.c").uleb(0).uleb(0).uleb(0).u8(0);
  Bytes p;
  // A discarded function: the linker resolved its address to 0.
  p.u8(0).uleb(9).u8(DW_LNE_set_address).u64(0);
  p.u8(DW_LNS_copy).u8(DW_LNS_advance_pc).uleb(0x2000).u8(0).uleb(1).u8(DW_LNE_end_sequence);
  p.append(program(1));
  const LineTable table = parse(unit(4, h, p), "/src");
  EXPECT_FALSE(table.lookup(0x800).has_value());
  EXPECT_EQ(table.lookup(0x1000)->line, 121u);
  EXPECT_EQ(table.sequenceRanges(), (std::vector<std::pair<uint64_t, uint64_t>>{{0x1000, 0x1018}}));
}

TEST(LineTable, MalformedInputIsAnErrorNotACrash) {
  Bytes h = standardHeaderFields(5);
  h.u8(1).uleb(DW_LNCT_path).uleb(DW_FORM_string).uleb(1).str("/src");
  h.u8(1).uleb(DW_LNCT_path).uleb(DW_FORM_string).uleb(1).str("a.c");
  std::vector<uint8_t> good = unit(5, h, program(0));
  std::string error;
  for (size_t cut = 0; cut < good.size(); ++cut) {
    std::vector<uint8_t> truncated(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
    (void)LineTable::parse({truncated, {}, {}}, 0, "/src", error);
  }
  EXPECT_FALSE(LineTable::parse({good, {}, {}}, good.size(), "/src", error).has_value());
  std::vector<uint8_t> badVersion = good;
  badVersion[4] = 9;
  EXPECT_FALSE(LineTable::parse({badVersion, {}, {}}, 0, "/src", error).has_value());
  EXPECT_NE(error.find("version"), std::string::npos) << error;
}

TEST(SourcePath, JoinedLikeDwarf5AndLlvmSymbolizer) {
  EXPECT_EQ(joinSourcePath("/build/app", "src", false, "a.c"), "/build/app/src/a.c");
  EXPECT_EQ(joinSourcePath("/build/app", "/usr/include", false, "stdio.h"), "/usr/include/stdio.h");
  EXPECT_EQ(joinSourcePath("/build/app", "src", false, "/abs/a.c"), "/abs/a.c");
  EXPECT_EQ(joinSourcePath("./libio", "./libio", true, "filedoalloc.c"), "./libio/filedoalloc.c");
  EXPECT_EQ(joinSourcePath("./elf", "../include", false, "rtld-malloc.h"), "./elf/../include/rtld-malloc.h");
  EXPECT_EQ(joinSourcePath("./pwd", "", false, "getpwuid.c"), "./pwd/getpwuid.c");  // DWARF 4 directory 0
  EXPECT_EQ(joinSourcePath("/build/", "src/", false, "a.c"), "/build/src/a.c");
  EXPECT_EQ(joinSourcePath("", "src", false, "a.c"), "src/a.c");
  EXPECT_EQ(joinSourcePath("", "", false, "a.c"), "a.c");
}

}  // namespace
}  // namespace heaptrail::symbols
