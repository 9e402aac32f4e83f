#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace heaptrail::recorder {

// Where a function's uprobe is put. A uprobe costs little on an instruction the kernel
// emulates (push, nop, jmp/jcc/call with a relative target) and many times more on one
// it has to single-step out of line (endbr64, mov, test, sub, cmp, ...): see the
// per-instruction table in BENCHMARKS.md (tools/bench/sites.py). So, instead of the
// first instruction, the probe goes on the first emulated instruction that
//   - every call executes (no branch before it, none into the prologue up to it),
//   - has the arguments the recorder reads still in registers (it tracks where they
//     moved),
//   - sees the entry's stack pointer, when the function has a return probe there (the
//     kernel hijacks the return address at [sp]) or a stack is captured at entry.
// Anything the decoder does not understand ends the search: the entry is the fallback.
enum class X86Register : uint8_t {
  rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
};
inline constexpr size_t kTrackedArguments = 4;  // rdi, rsi, rdx, rcx: every call shape fits

struct ProbeSite {
  uint32_t offset = 0;        // bytes from the function's first instruction
  uint32_t stackOffset = 0;   // entry stack pointer minus the site's (bytes pushed so far)
  bool emulated = false;      // the kernel emulates the probed instruction
  std::string instruction;    // what is probed, e.g. "push %r12", "je", "endbr64"
  std::array<X86Register, kTrackedArguments> arguments = {X86Register::rdi, X86Register::rsi, X86Register::rdx,
                                                          X86Register::rcx};
  std::string reason;         // why the entry was kept, when it was
};

struct SiteRequirements {
  unsigned argumentsUsed = 1;     // the first N integer arguments must be recoverable
  bool sameStackPointer = true;   // the site must see the entry's stack pointer
};

// One decoded instruction of a prologue, as the chooser sees it.
struct DecodedInstruction {
  uint32_t offset = 0;
  uint32_t length = 0;
  std::string text;            // a short mnemonic for `heaptrail info`
  bool emulated = false;       // the kernel emulates it (no out-of-line single step)
  bool transfer = false;       // jump, call or return: control may leave the straight line
  bool understood = false;     // its effect on registers and the stack pointer is modeled
};

// Decodes up to `max` instructions from the start of `code` (stops at the first
// transfer or the first instruction it does not understand, which it still returns).
std::vector<DecodedInstruction> decodePrologue(std::span<const uint8_t> code, size_t max = 16);

// Chooses the probe site of a function whose first bytes are `code` (at least the
// longest prologue considered; fewer bytes only shorten the search). `branchTargets`
// are offsets, relative to the function, that some direct branch or call in the object
// may jump to (see branchTargetsInto): a site at or after such a target could be skipped
// or run twice per call, so the search stops before it.
ProbeSite chooseProbeSite(std::span<const uint8_t> code, const SiteRequirements& needs,
                          std::span<const uint32_t> branchTargets = {});

// A range of a function's first bytes that a probe site may be chosen in.
struct CodeRange {
  uint64_t start = 0;   // virtual address of the function
  uint32_t length = 0;
};

// For each range (sorted by start, not overlapping), every offset in (0, length) that a
// direct relative jump, conditional jump or call found anywhere in `text` (read as if
// it started at virtual address `textAddress`) could land on. Over-approximates: every
// byte position is tried as the start of such an instruction, so a real branch is never
// missed; a false hit only keeps a site closer to the entry.
std::vector<std::vector<uint32_t>> branchTargetsInto(std::span<const uint8_t> text, uint64_t textAddress,
                                                     std::span<const CodeRange> ranges);

// An executable segment of an ELF file.
struct TextSegment {
  uint64_t vaddr = 0;
  uint64_t fileOffset = 0;
  uint64_t fileSize = 0;
};
struct SiteQuery {
  uint64_t vaddr = 0;        // the function's symbol value
  uint64_t fileOffset = 0;   // where its first byte is in the file
  uint64_t size = 0;         // the symbol's size (0: unknown); no site beyond it
  SiteRequirements needs;
};
// Chooses the sites of several functions of one ELF file (x86-64): reads each
// function's first bytes and scans the executable segments once, a chunk at a time,
// for branches into them. A function whose bytes cannot be read keeps its entry.
// With `entriesOnly`, every site is the function's first instruction (described, not
// moved): --probe-sites=entry.
std::vector<ProbeSite> chooseProbeSites(const std::string& path, std::span<const TextSegment> text,
                                        std::span<const SiteQuery> queries, bool entriesOnly = false);

// The longest prologue the chooser looks at.
inline constexpr uint32_t kPrologueBytes = 64;

}  // namespace heaptrail::recorder
