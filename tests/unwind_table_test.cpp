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
#include <optional>
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

const std::string kAarch64Readelf = "/usr/bin/aarch64-linux-gnu-readelf";

// readelf prints "u" both for a register without a rule and for DW_CFA_undefined; only the
// second ends a stack. From the raw dump: for each FDE (by its first pc) that makes x30
// undefined, the pc from which it is (AArch64's outermost frames: _start, thread starts).
std::map<uint64_t, uint64_t> x30UndefinedFrom(const std::string& readelf, const std::string& path) {
  const auto result = testing::runCommand({readelf, "--debug-dump=frames", path});
  std::map<uint64_t, uint64_t> from;
  std::istringstream in(result.out);
  std::string line;
  uint64_t fdeStart = 0, loc = 0;
  const auto addressAfter = [&](const std::string& marker) {
    const auto at = line.find(marker);
    return at == std::string::npos ? uint64_t{0} : std::stoull(line.substr(at + marker.size()), nullptr, 16);
  };
  while (std::getline(in, line)) {
    if (line.find(" FDE cie=") != std::string::npos) {
      fdeStart = loc = addressAfter("pc=");
    } else if (line.find("DW_CFA_advance_loc") != std::string::npos || line.find("DW_CFA_set_loc") != std::string::npos) {
      if (line.find(" to ") != std::string::npos) loc = addressAfter(" to ");
    } else if (line.find("DW_CFA_undefined: r30") != std::string::npos) {
      from.emplace(fdeStart, loc);
    }
  }
  return from;
}

uint32_t expectedAarch64Rule(const std::string& cfa, const std::string& x29, const std::string& ra, bool signalFrame,
                             bool raUndefined) {
  const uint32_t unsupported = HT_A64_RULE(HT_CFA_UNSUPPORTED, 0, 0, 0);
  if (signalFrame) return unsupported;
  if (ra == "u" && raUndefined) return HT_RULE(HT_CFA_STOP, 0, 0);
  uint32_t kind = HT_CFA_UNSUPPORTED;
  std::string offsetText;
  if (cfa.rfind("sp+", 0) == 0) kind = HT_CFA_RSP, offsetText = cfa.substr(3);
  if (cfa.rfind("x29+", 0) == 0) kind = HT_CFA_RBP, offsetText = cfa.substr(4);
  if (kind == HT_CFA_UNSUPPORTED) return unsupported;
  const uint64_t offset = std::stoull(offsetText);
  if (offset % 8 || offset >= HT_A64_CFA_OFFSET_LIMIT) return unsupported;
  uint64_t lrBelow = 0;
  if (ra.rfind("c-", 0) == 0) {
    lrBelow = std::stoull(ra.substr(2));
    if (lrBelow % 8 || lrBelow / 8 >= HT_A64_LR_LIMIT) return unsupported;
  } else if (!ra.empty() && ra != "u" && ra != "s") {
    return unsupported;
  }
  uint32_t fp = HT_A64_FP_UNKNOWN;
  if (x29.empty() || x29 == "u" || x29 == "s")
    fp = HT_A64_FP_UNCHANGED;
  else if (lrBelow && x29 == "c-" + std::to_string(lrBelow + 8))
    fp = HT_A64_FP_BELOW_LR;
  return HT_A64_RULE(kind, offset, fp, lrBelow / 8);
}

// Every row of every FDE readelf interprets (FDEs without instructions print none).
std::vector<OracleRow> readelfRows(const std::string& path, CfiArch arch = CfiArch::X86_64) {
  const std::string readelf = arch == CfiArch::Aarch64 ? kAarch64Readelf : "/usr/bin/readelf";
  const auto result = testing::runCommand({readelf, "--debug-dump=frames-interp", path});
  // readelf exits 1 on libc without saying why; the rows it printed are what counts.
  EXPECT_NE(result.exitCode, -1) << result.err;
  const auto undefinedRa = arch == CfiArch::Aarch64 ? x30UndefinedFrom(readelf, path) : std::map<uint64_t, uint64_t>{};
  std::vector<OracleRow> rows;
  std::map<std::string, bool> cieSignalFrame;  // CIE offset -> augmentation has 'S'
  std::istringstream in(result.out);
  std::string line;
  bool inEhFrame = false, signalFrame = false, isFde = false;
  std::optional<uint64_t> raUndefinedFrom;
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
      const auto pc = line.find("pc=");
      const auto it = pc == std::string::npos ? undefinedRa.end() : undefinedRa.find(std::stoull(line.substr(pc + 3), nullptr, 16));
      raUndefinedFrom = it == undefinedRa.end() ? std::nullopt : std::optional<uint64_t>(it->second);
      columns.clear();
    } else if (w[0] == "LOC") {
      columns = w;
    } else if (isFde && !columns.empty() && w.size() == columns.size()) {
      std::string fp, ra;
      for (size_t i = 2; i < columns.size(); ++i) {
        if (columns[i] == (arch == CfiArch::Aarch64 ? "x29" : "rbp")) fp = w[i];
        if (columns[i] == "ra") ra = w[i];
      }
      const uint64_t pc = std::stoull(w[0], nullptr, 16);
      const bool raUndefined = raUndefinedFrom && pc >= *raUndefinedFrom;
      const uint32_t rule = arch == CfiArch::Aarch64 ? expectedAarch64Rule(w[1], fp, ra, signalFrame, raUndefined)
                                                     : expectedRule(w[1], fp, ra, signalFrame);
      rows.push_back({pc, rule, line});
    }
  }
  return rows;
}

UnwindTable compile(const std::string& path, CfiArch arch = CfiArch::X86_64) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(fd) << path;
  return compileUnwindTable(fd.get(), arch);
}

std::string describe(uint32_t rule, CfiArch arch = CfiArch::X86_64) {
  const ht_frame_rule f = ruleFields(arch, rule);
  std::ostringstream out;
  out << "kind " << f.cfa_kind << " offset " << f.cfa_offset << " fp slots " << f.fp_slots << " ra slots "
      << f.ra_slots;
  return out.str();
}

void expectAgreesWithReadelf(const std::string& path, size_t minimumRows, CfiArch arch = CfiArch::X86_64) {
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not installed";
  const UnwindTable table = compile(path, arch);
  ASSERT_EQ(table.source, FrameSource::EhFrame) << path;
  EXPECT_EQ(table.malformedEntries, 0u);
  const auto oracle = readelfRows(path, arch);
  ASSERT_GE(oracle.size(), minimumRows) << "readelf printed too few rows for " << path;
  size_t mismatches = 0;
  for (const OracleRow& row : oracle) {
    const uint32_t ours = table.ruleAt(row.pc);
    if (ours != row.rule && ++mismatches <= 10)
      ADD_FAILURE() << path << ": " << row.line << "\n  readelf: " << describe(row.rule, arch) << "\n  ours:    "
                    << describe(ours, arch);
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

// AArch64 tables (the device recorder's), checked here against binutils' cross readelf on
// Debian's arm64 libc and libstdc++ (the cross toolchain's) and the samples built without
// frame pointers.
bool haveAarch64Readelf() { return std::filesystem::exists(kAarch64Readelf); }
const std::string kAarch64Lib = "/usr/aarch64-linux-gnu/lib";

TEST(UnwindTable, Aarch64AgreesWithReadelfOnLibc) {
  if (!haveAarch64Readelf()) GTEST_SKIP() << "aarch64-linux-gnu-readelf is not installed (binutils-aarch64-linux-gnu)";
  expectAgreesWithReadelf(kAarch64Lib + "/libc.so.6", 10000, CfiArch::Aarch64);
}

TEST(UnwindTable, Aarch64AgreesWithReadelfOnLibstdcxx) {
  if (!haveAarch64Readelf()) GTEST_SKIP() << "aarch64-linux-gnu-readelf is not installed (binutils-aarch64-linux-gnu)";
  expectAgreesWithReadelf(kAarch64Lib + "/libstdc++.so.6", 10000, CfiArch::Aarch64);
}

TEST(UnwindTable, Aarch64AgreesWithReadelfOnSamplesWithoutFramePointers) {
  if (!haveAarch64Readelf()) GTEST_SKIP() << "aarch64-linux-gnu-readelf is not installed (binutils-aarch64-linux-gnu)";
  expectAgreesWithReadelf(std::string(HEAPTRAIL_AARCH64_SAMPLES_DIR) + "/nofp_chain", 20, CfiArch::Aarch64);
  expectAgreesWithReadelf(std::string(HEAPTRAIL_AARCH64_SAMPLES_DIR) + "/nofp_strings", 5, CfiArch::Aarch64);
}

// What the AArch64 rules hold in real code: x30 saved alone (-fomit-frame-pointer), the
// frame record {x29, x30}, x30 still in the register at a function's entry, and _start's
// undefined x30.
TEST(UnwindTable, Aarch64RulesOfRealCode) {
  const std::string chain = std::string(HEAPTRAIL_AARCH64_SAMPLES_DIR) + "/nofp_chain";
  const std::string libc = kAarch64Lib + "/libc.so.6";
  if (!std::filesystem::exists(chain) || !std::filesystem::exists(libc)) GTEST_SKIP() << "no aarch64 cross toolchain";
  // Not the recorder's architecture here: without an explicit one, no table.
  EXPECT_TRUE(compile(chain).empty());
  EXPECT_TRUE(compile("/lib/x86_64-linux-gnu/libc.so.6", CfiArch::Aarch64).empty());
  size_t lrAlone = 0, frameRecords = 0, lrInRegister = 0, stops = 0;
  for (const std::string& path : {chain, libc}) {
    const UnwindTable table = compile(path, CfiArch::Aarch64);
    for (const auto& row : table.rows) {
      const ht_frame_rule f = ruleFields(CfiArch::Aarch64, row.rule);
      stops += f.cfa_kind == HT_CFA_STOP;
      if (f.cfa_kind > HT_CFA_RBP) continue;
      lrInRegister += f.ra_slots == 0;
      lrAlone += f.ra_slots != 0 && f.fp_slots == 0;
      frameRecords += f.ra_slots != 0 && f.fp_slots == f.ra_slots + 1;
    }
  }
  EXPECT_GT(lrAlone, 10u);
  EXPECT_GT(frameRecords, 1000u);
  EXPECT_GT(lrInRegister, 1000u);
  EXPECT_GE(stops, 2u);  // the sample's _start and libc's thread start
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

// Hand-made AArch64 CFI: x30 has no rule in the CIE (in the link register), the frame
// record, negate_ra_state (pointer authentication), x29 saved apart from x30, an undefined x30.
TEST(CallFrames, Aarch64Rules) {
  // CIE: version 1, "zR", code align 4, data align -8, ra 30, aug data (R = pcrel|sdata4),
  // def_cfa sp+0.
  std::vector<uint8_t> cie = {1, 'z', 'R', 0, 4, 0x78, 30, 1, 0x1b, 0x0c, 31, 0};
  while ((cie.size() + 4) % 8) cie.push_back(0);
  std::vector<uint8_t> section;
  const auto put32 = [&](std::vector<uint8_t>& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(section, static_cast<uint32_t>(cie.size() + 4));
  put32(section, 0);
  section.insert(section.end(), cie.begin(), cie.end());
  std::vector<uint8_t> ops = {
      0x2d,                     // negate_ra_state (paciasp)
      0x41, 0x0e, 32, 0x9d, 4, 0x9e, 3,  // +4: cfa sp+32, x29 at cfa-32, x30 at cfa-24
      0x41, 0x0c, 29, 32,       // +4: cfa x29+32
      0x41, 0x93, 2,            // +4: x19 saved: not followed
      0x41, 0x9d, 1,            // +4: x29 at cfa-8, not below x30: lost
      0x41, 0x0c, 31, 16, 0xde, // +4: cfa sp+16, restore x30 (in the register again)
      0x41, 0x07, 30,           // +4: x30 undefined
  };
  const size_t fdeStart = section.size();
  std::vector<uint8_t> fde;
  put32(fde, static_cast<uint32_t>(fdeStart + 4));
  put32(fde, static_cast<uint32_t>(static_cast<int32_t>(0x1000 - (0x2000 + fdeStart + 8))));
  put32(fde, 0x40);
  fde.push_back(0);
  fde.insert(fde.end(), ops.begin(), ops.end());
  put32(section, static_cast<uint32_t>(fde.size()));
  section.insert(section.end(), fde.begin(), fde.end());
  put32(section, 0);

  const auto decoded = decodeCallFrames(section, 0x2000, FrameSection::EhFrame, CfiArch::Aarch64);
  ASSERT_EQ(decoded.malformedEntries, 0u);
  ASSERT_EQ(decoded.functions.size(), 1u);
  const std::vector<FrameRow> expected = {
      {0x1000, HT_A64_RULE(HT_CFA_RSP, 0, HT_A64_FP_UNCHANGED, HT_A64_LR_IN_REGISTER)},
      {0x1004, HT_A64_RULE(HT_CFA_RSP, 32, HT_A64_FP_BELOW_LR, 3)},
      {0x1008, HT_A64_RULE(HT_CFA_RBP, 32, HT_A64_FP_BELOW_LR, 3)},
      {0x100c, HT_A64_RULE(HT_CFA_RBP, 32, HT_A64_FP_BELOW_LR, 3)},
      {0x1010, HT_A64_RULE(HT_CFA_RBP, 32, HT_A64_FP_UNKNOWN, 3)},
      {0x1014, HT_A64_RULE(HT_CFA_RSP, 16, HT_A64_FP_UNKNOWN, HT_A64_LR_IN_REGISTER)},
      {0x1018, HT_RULE(HT_CFA_STOP, 0, 0)},
  };
  EXPECT_EQ(decoded.functions[0].rows, expected);
  const ht_frame_rule record = ruleFields(CfiArch::Aarch64, expected[1].rule);
  EXPECT_EQ(record.cfa_offset, 32u);
  EXPECT_EQ(record.ra_slots, 3u);
  EXPECT_EQ(record.fp_slots, 4u);
  EXPECT_EQ(ruleFields(CfiArch::Aarch64, expected[4].rule).fp_slots, HT_FRAME_FP_UNKNOWN);
  // Read as x86-64 CFI, registers 31 and 29 are neither rsp nor rbp: nothing to follow.
  const auto asX86 = decodeCallFrames(section, 0x2000, FrameSection::EhFrame, CfiArch::X86_64);
  ASSERT_EQ(asX86.functions.size(), 1u);
  EXPECT_EQ(HT_RULE_CFA_KIND(asX86.functions[0].rows[1].rule), HT_CFA_UNSUPPORTED);
}

TEST(CallFrames, TruncatedInputIsCountedNotFatal) {
  const std::vector<uint8_t> garbage = {0x30, 0, 0, 0, 0, 0, 0, 0, 1, 'z'};
  const auto decoded = decodeCallFrames(garbage, 0, FrameSection::EhFrame);
  EXPECT_TRUE(decoded.functions.empty());
  EXPECT_GE(decoded.malformedEntries, 1u);
}

}  // namespace
}  // namespace heaptrail::recorder::unwind
