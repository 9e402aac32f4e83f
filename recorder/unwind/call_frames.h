#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace heaptrail::recorder::unwind {

// The x86-64 rules of one address range, decoded from DWARF call-frame information:
// `rule` is packed as bpf/unwind_table.h's HT_RULE.
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
// the DW_CFA_* operations x86-64 code uses (advance_loc*, def_cfa*, offset*, restore*,
// remember/restore_state, same_value, undefined, register, GNU_args_size); CFA
// expressions (PLT entries) and signal frames yield HT_CFA_UNSUPPORTED rows. Never
// throws on malformed input: what cannot be decoded is skipped and counted.
DecodedFrames decodeCallFrames(std::span<const uint8_t> bytes, uint64_t sectionVaddr, FrameSection kind);

}  // namespace heaptrail::recorder::unwind
