// The recorder's CFI interpreter (recorder/unwind/) against binutils' own:
// every row `readelf --debug-dump=frames-interp` prints for real binaries must give the
// same rule in our compiled table.
#include <fcntl.h>
#include <gelf.h>
#include <gtest/gtest.h>
#include <libelf.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "recorder/unwind/call_frames.h"
#include "recorder/unwind/table_cache.h"
#include "recorder/unwind/unwind_table.h"
#include "tests/support/run_command.h"

namespace heaptrail::recorder::unwind {
namespace {

struct OracleRow {
  uint64_t pc = 0;
  uint32_t rule = 0;
  std::string line;
};

uint32_t expectedRule(const std::string& cfa, const std::string& rbp, const std::string& ra, bool signalFrame) {
  if (signalFrame) return HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);
  if (ra == "u") return HT_RULE(HT_CFA_STOP, 0, 0);
  if (ra != "c-8") return HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);
  uint32_t kind = HT_CFA_UNSUPPORTED;
  uint64_t offset = 0;
  if (cfa.rfind("rsp+", 0) == 0) kind = HT_CFA_RSP;
  if (cfa.rfind("rbp+", 0) == 0) kind = HT_CFA_RBP;
  if (kind == HT_CFA_UNSUPPORTED) return HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);
  offset = std::stoull(cfa.substr(4));
  uint32_t slots = HT_RBP_UNKNOWN;
  if (rbp.empty() || rbp == "u" || rbp == "s") {
    slots = HT_RBP_UNCHANGED;
  } else if (rbp.rfind("c-", 0) == 0) {
    const uint64_t below = std::stoull(rbp.substr(2));
    if (below % 8 == 0 && below / 8 < HT_RBP_UNKNOWN) slots = static_cast<uint32_t>(below / 8);
  }
  return HT_RULE(kind, offset, slots);
}

// Every row of every FDE readelf interprets (FDEs without instructions print none).
std::vector<OracleRow> readelfRows(const std::string& path) {
  const auto result = testing::runCommand({"/usr/bin/readelf", "--debug-dump=frames-interp", path});
  // readelf exits 1 on libc without saying why; the rows it printed are what counts.
  EXPECT_NE(result.exitCode, -1) << result.err;
  std::vector<OracleRow> rows;
  std::map<std::string, bool> cieSignalFrame;  // CIE offset -> augmentation has 'S'
  std::istringstream in(result.out);
  std::string line;
  bool inEhFrame = false, signalFrame = false, isFde = false;
  std::vector<std::string> columns;
  while (std::getline(in, line)) {
    if (line.rfind("Contents of the", 0) == 0) {
      inEhFrame = line.find(".eh_frame ") != std::string::npos;
      continue;
    }
    if (!inEhFrame) continue;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.empty()) continue;
    if (w.size() >= 4 && w[3] == "CIE") {
      cieSignalFrame[w[0]] = w.size() > 4 && w[4].find('S') != std::string::npos;
      isFde = false;
      columns.clear();
    } else if (w.size() >= 5 && w[3] == "FDE") {
      isFde = true;
      signalFrame = cieSignalFrame[w[4].substr(4)];
      columns.clear();
    } else if (w[0] == "LOC") {
      columns = w;
    } else if (isFde && !columns.empty() && w.size() == columns.size()) {
      std::string rbp, ra;
      for (size_t i = 2; i < columns.size(); ++i) {
        if (columns[i] == "rbp") rbp = w[i];
        if (columns[i] == "ra") ra = w[i];
      }
      rows.push_back({std::stoull(w[0], nullptr, 16), expectedRule(w[1], rbp, ra, signalFrame), line});
    }
  }
  return rows;
}

UnwindTable compile(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(fd) << path;
  return compileUnwindTable(fd.get());
}

std::string describe(uint32_t rule) {
  std::ostringstream out;
  out << "kind " << HT_RULE_CFA_KIND(rule) << " offset " << HT_RULE_CFA_OFFSET(rule) << " rbp slots "
      << HT_RULE_RBP_SLOTS(rule);
  return out.str();
}

void expectAgreesWithReadelf(const std::string& path, size_t minimumRows) {
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not installed";
  const UnwindTable table = compile(path);
  ASSERT_EQ(table.source, FrameSource::EhFrame) << path;
  EXPECT_EQ(table.malformedEntries, 0u);
  const auto oracle = readelfRows(path);
  ASSERT_GE(oracle.size(), minimumRows) << "readelf printed too few rows for " << path;
  size_t mismatches = 0;
  for (const OracleRow& row : oracle) {
    const uint32_t ours = table.ruleAt(row.pc);
    if (ours != row.rule && ++mismatches <= 10)
      ADD_FAILURE() << path << ": " << row.line << "\n  readelf: " << describe(row.rule) << "\n  ours:    "
                    << describe(ours);
  }
  EXPECT_EQ(mismatches, 0u) << "of " << oracle.size() << " rows";
}

TEST(UnwindTable, AgreesWithReadelfOnLibc) { expectAgreesWithReadelf("/lib/x86_64-linux-gnu/libc.so.6", 10000); }

TEST(UnwindTable, AgreesWithReadelfOnLibstdcxx) {
  expectAgreesWithReadelf("/usr/lib/x86_64-linux-gnu/libstdc++.so.6", 10000);
}

TEST(UnwindTable, AgreesWithReadelfOnAFramePointerLessSample) {
  expectAgreesWithReadelf(std::string(HEAPTRAIL_SAMPLES_DIR) + "/nofp_main", 5);
  expectAgreesWithReadelf(std::string(HEAPTRAIL_SAMPLES_DIR) + "/libnofp.so", 5);
}

TEST(UnwindTable, OutermostFrameStopsAndGapsAreUnsupported) {
  const std::string path = "/lib/x86_64-linux-gnu/libc.so.6";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not installed";
  const UnwindTable table = compile(path);
  // clone3's child path marks the return address undefined (the thread's first frame).
  bool stops = false;
  for (const auto& row : table.rows) stops |= HT_RULE_CFA_KIND(row.rule) == HT_CFA_STOP;
  EXPECT_TRUE(stops);
  EXPECT_EQ(HT_RULE_CFA_KIND(table.ruleAt(table.base - 1)), HT_CFA_UNSUPPORTED);
  EXPECT_EQ(HT_RULE_CFA_KIND(table.ruleAt(table.base + (uint64_t{1} << 33))), HT_CFA_UNSUPPORTED);
  // Compact: libc's table stays well under a MiB.
  EXPECT_LT(table.bytes(), 1u << 20);
  for (size_t i = 1; i < table.rows.size(); ++i) {
    ASSERT_LT(table.rows[i - 1].pc, table.rows[i].pc);
    ASSERT_NE(table.rows[i - 1].rule, table.rows[i].rule);
  }
}

// ld.so's _start and _dl_start_user have no CFI; every static constructor runs under
// them (_dl_init). Their code is the outermost frame: the walk is complete there.
TEST(UnwindTable, TheDynamicLoadersEntryCodeIsTheOutermostFrame) {
  const std::string path = "/lib64/ld-linux-x86-64.so.2";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not installed";
  const common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_NE(elf_version(EV_CURRENT), EV_NONE);
  Elf* elf = elf_begin(fd.get(), ELF_C_READ, nullptr);
  ASSERT_NE(elf, nullptr);
  GElf_Ehdr ehdr;
  ASSERT_NE(gelf_getehdr(elf, &ehdr), nullptr);
  elf_end(elf);
  const UnwindTable table = compile(path);
  EXPECT_EQ(HT_RULE_CFA_KIND(table.ruleAt(ehdr.e_entry)), HT_CFA_STOP);
  // Up to the next function with CFI: where the return from _dl_init lands, too.
  uint64_t next = 0;
  for (const auto& row : table.rows)
    if (row.pc + table.base > ehdr.e_entry) {
      next = row.pc + table.base;
      break;
    }
  ASSERT_GT(next, ehdr.e_entry);
  EXPECT_EQ(HT_RULE_CFA_KIND(table.ruleAt(next - 1)), HT_CFA_STOP);
  EXPECT_NE(HT_RULE_CFA_KIND(table.ruleAt(next)), HT_CFA_STOP);
  // Whatever readelf describes is unchanged.
  expectAgreesWithReadelf(path, 500);
}

TEST(UnwindTable, BiasMapsAnAddressToItsRow) {
  UnwindTable table;
  table.base = 0x1000;
  table.segments = {{0x1000, 0x1000, 0x5000}};
  // The text segment mapped at 0x7f0000001000 from file offset 0x1000.
  const auto bias = table.biasFor(0x7f0000001000, 0x1000);
  ASSERT_TRUE(bias);
  EXPECT_EQ(0x7f0000001234 - *bias, 0x234u);
  EXPECT_FALSE(table.biasFor(0x7f0000000000, 0x0));
}

TEST(UnwindTable, CacheSharesOneTablePerBuildId) {
  const std::string path = "/lib/x86_64-linux-gnu/libc.so.6";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not installed";
  TableCache cache;
  common::UniqueFd a(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  common::UniqueFd b(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  const auto first = cache.get(a.get());
  const auto second = cache.get(b.get());
  EXPECT_EQ(first.get(), second.get());
  EXPECT_EQ(cache.tables(), 1u);
  EXPECT_EQ(cache.bytes(), first->bytes());
}

// Hand-made CFI: the interpreter's state stack and the rules it cannot follow.
TEST(CallFrames, RememberRestoreStateAndExpressions) {
  // CIE: version 1, "zR", code align 1, data align -8, ra 16, aug data (R = pcrel|sdata4),
  // def_cfa rsp+8, offset ra at cfa-8.
  std::vector<uint8_t> cie = {1, 'z', 'R', 0, 1, 0x78, 16, 1, 0x1b, 0x0c, 7, 8, 0x90, 1};
  while ((cie.size() + 4) % 8) cie.push_back(0);
  std::vector<uint8_t> section;
  const auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) section.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(static_cast<uint32_t>(cie.size() + 4));
  put32(0);
  section.insert(section.end(), cie.begin(), cie.end());
  // FDE for [0x1000, 0x1040) when the section is at 0x2000.
  std::vector<uint8_t> ops = {
      0x41, 0x0e, 16, 0x86, 2,  // +1: cfa rsp+16, rbp at cfa-16
      0x43, 0x0d, 6,            // +3: cfa register rbp
      0x0a,                     // remember
      0x48, 0x0c, 7, 8,         // +8: cfa rsp+8 (an early return path)
      0x41, 0x0b,               // +1: restore: rbp+16 again
      0x44, 0x0f, 1, 0x30,      // +4: cfa expression (DW_OP_lit0)
      0x44, 0x07, 16,           // +4: ra undefined
  };
  const size_t fdeStart = section.size();
  std::vector<uint8_t> fde;
  const uint32_t ciePointer = static_cast<uint32_t>(fdeStart + 4);
  const int32_t pcBegin = static_cast<int32_t>(0x1000 - (0x2000 + fdeStart + 8));
  for (int i = 0; i < 4; ++i) fde.push_back(static_cast<uint8_t>(ciePointer >> (8 * i)));
  for (int i = 0; i < 4; ++i) fde.push_back(static_cast<uint8_t>(static_cast<uint32_t>(pcBegin) >> (8 * i)));
  for (int i = 0; i < 4; ++i) fde.push_back(static_cast<uint8_t>(0x40u >> (8 * i)));
  fde.push_back(0);  // augmentation data length
  fde.insert(fde.end(), ops.begin(), ops.end());
  put32(static_cast<uint32_t>(fde.size()));
  section.insert(section.end(), fde.begin(), fde.end());
  put32(0);

  const auto decoded = decodeCallFrames(section, 0x2000, FrameSection::EhFrame);
  ASSERT_EQ(decoded.malformedEntries, 0u);
  ASSERT_EQ(decoded.functions.size(), 1u);
  const auto& rows = decoded.functions[0].rows;
  const std::vector<FrameRow> expected = {
      {0x1000, HT_RULE(HT_CFA_RSP, 8, 0)},   {0x1001, HT_RULE(HT_CFA_RSP, 16, 2)},
      {0x1004, HT_RULE(HT_CFA_RBP, 16, 2)},  {0x100c, HT_RULE(HT_CFA_RSP, 8, 2)},
      {0x100d, HT_RULE(HT_CFA_RBP, 16, 2)},  {0x1011, HT_RULE(HT_CFA_UNSUPPORTED, 0, 0)},
      {0x1015, HT_RULE(HT_CFA_STOP, 0, 0)},
  };
  EXPECT_EQ(rows, expected);
}

TEST(CallFrames, TruncatedInputIsCountedNotFatal) {
  const std::vector<uint8_t> garbage = {0x30, 0, 0, 0, 0, 0, 0, 0, 1, 'z'};
  const auto decoded = decodeCallFrames(garbage, 0, FrameSection::EhFrame);
  EXPECT_TRUE(decoded.functions.empty());
  EXPECT_GE(decoded.malformedEntries, 1u);
}

}  // namespace
}  // namespace heaptrail::recorder::unwind
