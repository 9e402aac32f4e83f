// What the symbolizer knows about one code address, with the chain of calls inlined there.
// The same value goes from the symbolizer into the leak report and its outputs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace heaptrail::symbols {

enum class FrameStatus { Resolved, FileMissing, BuildIdMismatch, NotElf, NoSymbols, OutsideImage };

std::string_view toString(FrameStatus status);

// One function at one place in the source.
struct SourceFrame {
  std::string function;  // demangled, empty if unknown
  std::string file;      // source path as the DWARF names it (joined like llvm-symbolizer), empty if unknown
  unsigned line = 0;     // 0 if unknown
  bool operator==(const SourceFrame&) const = default;
};

struct SymbolizedFrame {
  FrameStatus status = FrameStatus::NoSymbols;
  // Innermost first, like `llvm-symbolizer -i`: the functions inlined at this address, then
  // the function whose machine code it is (always the last). Empty unless resolved.
  std::vector<SourceFrame> frames;
  std::string usedFile;  // file on disk that gave the answer (binary or separate debug file)
  std::string reason;    // human readable explanation when status != Resolved

  bool resolved() const { return status == FrameStatus::Resolved; }
  // The function the code belongs to; an empty SourceFrame when unresolved.
  const SourceFrame& outermost() const;
  // "FileMissing: cannot open /x" and the like; "" when resolved.
  std::string whyUnresolved() const;
  // Whether frames[index] is a call inlined into the frame after it.
  bool isInlined(std::size_t index) const { return index + 1 < frames.size(); }
};

}  // namespace heaptrail::symbols
