#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpf/unwind_table.h"
#include "recorder/unwind/call_frames.h"

namespace heaptrail::recorder::unwind {

// Where a table's rules came from.
enum class FrameSource { None, EhFrame, DebugFrame };

// The unwind table of one ELF file (bpf/unwind_table.h): what the BPF walker
// binary-searches for every frame in that file.
struct UnwindTable {
  struct Segment {  // an executable PT_LOAD
    uint64_t vaddr = 0, fileOffset = 0, fileSize = 0;
  };
  std::string buildId;
  FrameSource source = FrameSource::None;
  uint64_t base = 0;  // row pc = ELF virtual address - base
  std::vector<Segment> segments;
  std::vector<ht_unwind_row> rows;  // sorted by pc; one gap row ends each covered range
  uint64_t malformedEntries = 0;    // CIEs/FDEs that could not be decoded

  bool empty() const { return rows.empty(); }
  size_t bytes() const { return rows.size() * sizeof(ht_unwind_row); }
  // The rule (HT_RULE) that holds at ELF virtual address `vaddr`; HT_CFA_UNSUPPORTED
  // outside every covered range.
  uint32_t ruleAt(uint64_t vaddr) const;
  // The same for a row pc (vaddr - base), as the BPF walker searches.
  uint32_t ruleAtRow(uint32_t pc) const;
  // For a mapping of this file at `start` from file offset `fileOffset`: the bias the
  // walker subtracts from an address to get a row pc; nullopt when that part of the file
  // is not an executable segment.
  std::optional<uint64_t> biasFor(uint64_t start, uint64_t fileOffset) const;
};

// Compiles the table of the ELF file open at `fd` from its .eh_frame, or its
// .debug_frame when it has no .eh_frame, with `arch`'s rules (the recorder's own by
// default: the walker's). A file that is not 64-bit ELF of that architecture, or has
// neither section, gives an empty table (source None): the walker uses frame pointers
// there.
UnwindTable compileUnwindTable(int fd, CfiArch arch = kHostCfiArch);

}  // namespace heaptrail::recorder::unwind
