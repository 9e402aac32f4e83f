#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bpf/unwind_table.h"

namespace heaptrail::recorder::unwind {

// The architecture whose call-frame information is decoded, which decides the DWARF
// register numbers and how a row's rule is packed (bpf/unwind_table.h).
enum class CfiArch { X86_64, Aarch64 };

// The architecture the recorder runs on: the BPF walker's, and the tables it loads.
#if defined(__aarch64__)
inline constexpr CfiArch kHostCfiArch = CfiArch::Aarch64;
#else
inline constexpr CfiArch kHostCfiArch = CfiArch::X86_64;
#endif

// One address range's rule, decoded from DWARF call-frame information: `rule` is packed
// as bpf/unwind_table.h's HT_RULE (x86-64) or HT_A64_RULE (AArch64).
struct FrameRow {
  uint64_t pc = 0;  // ELF virtual address where the rule starts to hold
  uint32_t rule = 0;
  bool operator==(const FrameRow&) const = default;
};

// One FDE: the rows of [start, end), rows.front().pc == start.
struct FrameFunction {
  uint64_t start = 0;
  uint64_t end = 0;
  std::vector<FrameRow> rows;
};

enum class FrameSection { EhFrame, DebugFrame };

struct DecodedFrames {
  std::vector<FrameFunction> functions;
  uint64_t malformedEntries = 0;  // CIEs/FDEs skipped because they could not be decoded
};

// Decodes every FDE of a .eh_frame or .debug_frame section (`bytes`, loaded at
// `sectionVaddr`) by running its CIE's and its own instructions: a small interpreter of
// the DW_CFA_* operations x86-64 and AArch64 code uses (advance_loc*, def_cfa*, offset*,
// restore*, remember/restore_state, same_value, undefined, register, GNU_args_size,
// AArch64's negate_ra_state: pointer authentication, whose bits the walker strips); CFA
// expressions (PLT entries) and signal frames yield HT_CFA_UNSUPPORTED rows. Never
// throws on malformed input: what cannot be decoded is skipped and counted.
DecodedFrames decodeCallFrames(std::span<const uint8_t> bytes, uint64_t sectionVaddr, FrameSection kind,
                               CfiArch arch = CfiArch::X86_64);

// A packed rule's fields (bpf/unwind_table.h's ht_rule_fields) for `arch`.
ht_frame_rule ruleFields(CfiArch arch, uint32_t rule);

}  // namespace heaptrail::recorder::unwind
