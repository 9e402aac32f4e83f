#include "recorder/probe_sites.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

namespace heaptrail::recorder {
namespace {

constexpr const char* kRegisterNames[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                            "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
constexpr int kRsp = 4;

// The effect of one instruction on what the chooser tracks.
struct Effect {
  DecodedInstruction insn;
  int pushed = 0;           // bytes the stack pointer goes down by
  uint16_t clobbers = 0;    // registers whose old value is gone
  int copyFrom = -1;        // a whole 64-bit register copied ...
  int copyTo = -1;          // ... into this one
};

class Decoder {
 public:
  explicit Decoder(std::span<const uint8_t> code) : code_(code) {}

  // Decodes the instruction at `offset`; nullopt when the bytes run out.
  std::optional<Effect> decode(uint32_t offset) {
    pos_ = offset;
    e_ = Effect{};
    e_.insn.offset = offset;
    rex_ = 0;
    opsize16_ = rep_ = false;
    if (!prefixes()) return finish(false);
    const auto op = next();
    if (!op) return std::nullopt;
    const bool ok = *op == 0x0f ? twoByte() : oneByte(*op);
    if (truncated_) return std::nullopt;
    return finish(ok);
  }

 private:
  std::optional<uint8_t> next() {
    if (pos_ >= code_.size()) {
      truncated_ = true;
      return std::nullopt;
    }
    return code_[pos_++];
  }
  bool skip(size_t n) {
    if (pos_ + n > code_.size()) {
      truncated_ = true;
      return false;
    }
    pos_ += static_cast<uint32_t>(n);
    return true;
  }
  std::optional<Effect> finish(bool understood) {
    if (truncated_) return std::nullopt;
    e_.insn.understood = understood;
    e_.insn.length = pos_ - e_.insn.offset;
    if (!understood) {
      e_.insn.emulated = false;
      if (e_.insn.text.empty()) e_.insn.text = "(not decoded)";
    }
    return e_;
  }

  bool prefixes() {
    while (pos_ < code_.size()) {
      const uint8_t b = code_[pos_];
      if (b == 0x66) {
        opsize16_ = true;
      } else if (b == 0xf3 || b == 0xf2) {
        rep_ = true;
        repByte_ = b;
      } else if (b == 0x2e || b == 0x3e || b == 0x26 || b == 0x36 || b == 0x64 || b == 0x65) {
        // segment overrides (fs:/gs: for thread-local data; 3e is also "notrack")
      } else if (b == 0xf0 || b == 0x67) {
        return false;  // lock, 32-bit addressing: not modeled
      } else {
        break;
      }
      ++pos_;
    }
    if (pos_ < code_.size() && (code_[pos_] & 0xf0) == 0x40) rex_ = code_[pos_++];
    return true;
  }

  bool rexW() const { return rex_ & 8; }
  int rexR() const { return (rex_ & 4) ? 8 : 0; }
  int rexB() const { return (rex_ & 1) ? 8 : 0; }

  struct ModRm {
    int mod, reg, rm;  // reg and rm extended by REX; rm is a register only when mod == 3
  };
  std::optional<ModRm> modrm() {
    const auto b = next();
    if (!b) return std::nullopt;
    ModRm m{*b >> 6, ((*b >> 3) & 7) | rexR(), (*b & 7) | rexB()};
    if (m.mod != 3) {
      int base = *b & 7;
      if (base == 4) {  // SIB
        const auto sib = next();
        if (!sib) return std::nullopt;
        base = *sib & 7;
      }
      if (m.mod == 1 && !skip(1)) return std::nullopt;
      if ((m.mod == 2 || (m.mod == 0 && base == 5)) && !skip(4)) return std::nullopt;
    }
    return m;
  }
  // A byte register without REX: 4-7 are ah, ch, dh, bh, parts of rax..rbx.
  int byteRegister(int index) const { return (!rex_ && index >= 4 && index < 8) ? index - 4 : index; }
  void clobber(int reg) { e_.clobbers |= static_cast<uint16_t>(1u << reg); }
  bool immediate(bool byteSized) { return skip(byteSized ? 1 : opsize16_ ? 2 : 4); }
  void text(const std::string& t) { e_.insn.text = t; }

  // The register written by an instruction with a ModRM operand; a write to the stack
  // pointer other than the modeled adjustments is not understood.
  bool writesRm(const ModRm& m, bool byteSized) {
    if (m.mod != 3) return true;  // memory destination
    const int reg = byteSized ? byteRegister(m.rm) : m.rm;
    if (reg == kRsp && !byteSized) return false;
    clobber(reg);
    return true;
  }
  bool writesReg(int reg, bool byteSized) {
    reg = byteSized ? byteRegister(reg) : reg;
    if (reg == kRsp && !byteSized) return false;
    clobber(reg);
    return true;
  }

  bool oneByte(uint8_t op) {
    // Two-operand arithmetic: add, or, adc, sbb, and, sub, xor (00-35), cmp (38-3d).
    if (op < 0x40 && (op & 7) < 6 && op != 0x0f) {
      const int group = op >> 3;  // 0 add, 1 or, 2 adc, 3 sbb, 4 and, 5 sub, 6 xor, 7 cmp
      static const char* names[] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
      text(names[group]);
      const int form = op & 7;
      const bool byteSized = (form & 1) == 0;
      if (form == 4 || form == 5) {  // al/eax, imm
        if (!immediate(form == 4)) return false;
        return group == 7 || writesReg(0, form == 4);
      }
      const auto m = modrm();
      if (!m) return false;
      if (group == 7) return true;
      return form < 2 ? writesRm(*m, byteSized) : writesReg(m->reg, byteSized);
    }
    if (op >= 0x50 && op <= 0x57) {
      if (opsize16_) return false;
      e_.pushed = 8;
      e_.insn.emulated = true;
      text(std::string("push %") + kRegisterNames[(op & 7) | rexB()]);
      return true;
    }
    if (op >= 0x58 && op <= 0x5f) {
      if (opsize16_) return false;
      text(std::string("pop %") + kRegisterNames[(op & 7) | rexB()]);
      e_.pushed = -8;
      clobber((op & 7) | rexB());
      return true;
    }
    if (op == 0x63) {  // movsxd
      text("movsxd");
      const auto m = modrm();
      return m && writesReg(m->reg, false);
    }
    if (op == 0x69 || op == 0x6b) {  // imul r, r/m, imm
      text("imul");
      const auto m = modrm();
      return m && immediate(op == 0x6b) && writesReg(m->reg, false);
    }
    if ((op >= 0x70 && op <= 0x7f) || op == 0xeb) {
      text(op == 0xeb ? "jmp" : "jcc");
      e_.insn.transfer = e_.insn.emulated = true;
      return skip(1);
    }
    if (op >= 0x80 && op <= 0x83 && op != 0x82) {  // group 1: arithmetic with an immediate
      const auto m = modrm();
      if (!m) return false;
      const bool byteSized = op == 0x80;
      const bool imm8 = op != 0x81;
      const auto immAt = pos_;
      if (!immediate(imm8)) return false;
      static const char* names[] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
      text(names[m->reg & 7]);
      if ((m->reg & 7) == 7) return true;
      if (m->mod == 3 && m->rm == kRsp && !byteSized) {
        // sub/add $imm, %rsp: the stack frame of the prologue.
        if (!rexW() || ((m->reg & 7) != 5 && (m->reg & 7) != 0)) return false;
        const int32_t imm = imm8 ? static_cast<int8_t>(code_[immAt])
                                 : static_cast<int32_t>(code_[immAt] | code_[immAt + 1] << 8 | code_[immAt + 2] << 16 |
                                                        static_cast<uint32_t>(code_[immAt + 3]) << 24);
        e_.pushed = (m->reg & 7) == 5 ? imm : -imm;
        return true;
      }
      return writesRm(*m, byteSized);
    }
    if (op == 0x84 || op == 0x85) {
      text("test");
      return modrm().has_value();
    }
    if (op >= 0x88 && op <= 0x8b) {
      text("mov");
      const auto m = modrm();
      if (!m) return false;
      const bool byteSized = op == 0x88 || op == 0x8a;
      if (op == 0x89 && m->mod == 3 && rexW() && !opsize16_) {
        if (m->rm == kRsp) return false;
        e_.copyFrom = m->reg;
        e_.copyTo = m->rm;
        return true;
      }
      if (op == 0x8b && m->mod == 3 && rexW() && !opsize16_) {
        if (m->reg == kRsp) return false;
        e_.copyFrom = m->rm;
        e_.copyTo = m->reg;
        return true;
      }
      return op <= 0x89 ? writesRm(*m, byteSized) : writesReg(m->reg, byteSized);
    }
    if (op == 0x8d) {
      text("lea");
      const auto m = modrm();
      return m && m->mod != 3 && writesReg(m->reg, false);
    }
    if (op == 0x90) {
      if (rexB()) return false;  // xchg %r8, %rax
      if (rep_) {
        text("pause");
        return true;
      }
      text("nop");
      e_.insn.emulated = true;
      return true;
    }
    if (op == 0x98 || op == 0x99) {  // cwde/cdqe, cdq/cqo
      text(op == 0x98 ? "cdqe" : "cqo");
      clobber(op == 0x98 ? 0 : 2);
      return true;
    }
    if (op == 0xa8 || op == 0xa9) {
      text("test");
      return immediate(op == 0xa8);
    }
    if (op >= 0xb0 && op <= 0xbf) {
      text("mov");
      const bool byteSized = op < 0xb8;
      const int reg = (op & 7) | rexB();
      if (!skip(byteSized ? 1 : rexW() ? 8 : opsize16_ ? 2 : 4)) return false;
      return writesReg(reg, byteSized);
    }
    if (op == 0xc0 || op == 0xc1 || (op >= 0xd0 && op <= 0xd3)) {  // shifts and rotates
      text("shift");
      const auto m = modrm();
      if (!m || ((op == 0xc0 || op == 0xc1) && !skip(1))) return false;
      return writesRm(*m, (op & 1) == 0);
    }
    if (op == 0xc3 || op == 0xc2) {
      text("ret");
      e_.insn.transfer = true;
      return op == 0xc3 || skip(2);
    }
    if (op == 0xc6 || op == 0xc7) {
      text("mov");
      const auto m = modrm();
      if (!m || (m->reg & 7) != 0 || !immediate(op == 0xc6)) return false;
      return writesRm(*m, op == 0xc6);
    }
    if (op == 0xe8 || op == 0xe9) {
      text(op == 0xe8 ? "call" : "jmp");
      e_.insn.transfer = e_.insn.emulated = true;
      return skip(4);
    }
    if (op == 0xf6 || op == 0xf7) {  // group 3
      const auto m = modrm();
      if (!m) return false;
      const int sub = m->reg & 7;
      static const char* names[] = {"test", "test", "not", "neg", "mul", "imul", "div", "idiv"};
      text(names[sub]);
      if (sub <= 1) return immediate(op == 0xf6);
      if (sub <= 3) return writesRm(*m, op == 0xf6);
      clobber(0);
      if (op == 0xf7) clobber(2);
      return true;
    }
    if (op == 0xfe || op == 0xff) {  // group 4/5
      const auto m = modrm();
      if (!m) return false;
      const int sub = m->reg & 7;
      if (sub <= 1) {
        text(sub == 0 ? "inc" : "dec");
        return writesRm(*m, op == 0xfe);
      }
      if (op == 0xff && (sub == 2 || sub == 4)) {
        text(sub == 2 ? "call *" : "jmp *");
        e_.insn.transfer = true;
        return true;
      }
      return false;
    }
    return false;
  }

  bool twoByte() {
    const auto op = next();
    if (!op) return false;
    if (*op == 0x05) {  // syscall: its effects happen before a later site would see them
      text("syscall");
      e_.insn.transfer = true;
      clobber(0);
      clobber(1);
      clobber(11);
      return true;
    }
    if (*op == 0x0b) {
      text("ud2");
      e_.insn.transfer = true;
      return true;
    }
    if (*op == 0x1e && rep_ && repByte_ == 0xf3 && pos_ < code_.size() &&
        (code_[pos_] == 0xfa || code_[pos_] == 0xfb)) {
      text(code_[pos_] == 0xfa ? "endbr64" : "endbr32");
      ++pos_;
      return true;
    }
    if (*op == 0x1f) {  // multi-byte nop
      text("nop");
      const auto m = modrm();
      if (!m || (m->reg & 7) != 0) return false;
      e_.insn.emulated = true;
      return true;
    }
    if (*op >= 0x40 && *op <= 0x4f) {
      text("cmov");
      const auto m = modrm();
      return m && writesReg(m->reg, false);
    }
    if (*op >= 0x80 && *op <= 0x8f) {
      text("jcc");
      e_.insn.transfer = e_.insn.emulated = true;
      return skip(4);
    }
    if (*op >= 0x90 && *op <= 0x9f) {
      text("setcc");
      const auto m = modrm();
      return m && writesRm(*m, true);
    }
    if (*op == 0xaf) {
      text("imul");
      const auto m = modrm();
      return m && writesReg(m->reg, false);
    }
    if (*op == 0xb6 || *op == 0xb7 || *op == 0xbe || *op == 0xbf) {
      text(*op < 0xb8 ? "movzx" : "movsx");
      const auto m = modrm();
      return m && writesReg(m->reg, false);
    }
    return false;
  }

  std::span<const uint8_t> code_;
  uint32_t pos_ = 0;
  Effect e_;
  uint8_t rex_ = 0;
  bool opsize16_ = false, rep_ = false, truncated_ = false;
  uint8_t repByte_ = 0;
};

int32_t le32(std::span<const uint8_t> b, size_t at) {
  return static_cast<int32_t>(static_cast<uint32_t>(b[at]) | static_cast<uint32_t>(b[at + 1]) << 8 |
                              static_cast<uint32_t>(b[at + 2]) << 16 | static_cast<uint32_t>(b[at + 3]) << 24);
}

}  // namespace

std::vector<DecodedInstruction> decodePrologue(std::span<const uint8_t> code, size_t max) {
  std::vector<DecodedInstruction> out;
  Decoder decoder(code);
  uint32_t offset = 0;
  while (out.size() < max) {
    const auto e = decoder.decode(offset);
    if (!e) break;
    out.push_back(e->insn);
    if (!e->insn.understood || e->insn.transfer) break;
    offset += e->insn.length;
  }
  return out;
}

ProbeSite chooseProbeSite(std::span<const uint8_t> code, const SiteRequirements& needs,
                          std::span<const uint32_t> branchTargets) {
  ProbeSite entry;
  std::array<int, 16> holds;  // which argument each register still holds (-1: none)
  holds.fill(-1);
  for (size_t i = 0; i < kTrackedArguments; ++i) holds[static_cast<size_t>(entry.arguments[i])] = static_cast<int>(i);
  const uint32_t firstTarget = branchTargets.empty() ? UINT32_MAX
                                                     : *std::min_element(branchTargets.begin(), branchTargets.end());
  int pushed = 0;
  Decoder decoder(code);
  uint32_t offset = 0;
  for (int count = 0; count < 16; ++count) {
    const auto e = decoder.decode(offset);
    if (!e) {
      entry.reason = "prologue ends before an emulated instruction";
      break;
    }
    if (count == 0) entry.instruction = e->insn.text;
    if (offset > 0 && offset >= firstTarget) {
      entry.reason = "a branch leads into the prologue";
      break;
    }
    if (needs.sameStackPointer && pushed != 0) {
      entry.reason = "the stack pointer moves before an emulated instruction";
      break;
    }
    ProbeSite here;
    here.offset = offset;
    here.stackOffset = static_cast<uint32_t>(pushed);
    here.instruction = e->insn.text;
    bool located = true;
    for (size_t arg = 0; arg < needs.argumentsUsed && arg < kTrackedArguments; ++arg) {
      if (holds[static_cast<size_t>(entry.arguments[arg])] == static_cast<int>(arg)) continue;  // where it was
      const auto it = std::find(holds.begin(), holds.end(), static_cast<int>(arg));
      if (it == holds.end()) {
        located = false;
        break;
      }
      here.arguments[arg] = static_cast<X86Register>(it - holds.begin());
    }
    if (!located) {
      entry.reason = "an argument is overwritten before an emulated instruction";
      break;
    }
    if (e->insn.emulated) {
      here.emulated = true;
      return here;
    }
    if (!e->insn.understood) {
      entry.reason = "'" + e->insn.text + "' is not decoded";
      break;
    }
    if (e->insn.transfer) {
      entry.reason = "control leaves the straight line at '" + e->insn.text + "'";
      break;
    }
    if (e->copyFrom >= 0) {
      holds[static_cast<size_t>(e->copyTo)] = holds[static_cast<size_t>(e->copyFrom)];
    }
    for (int r = 0; r < 16; ++r)
      if (e->clobbers & (1u << r)) holds[static_cast<size_t>(r)] = -1;
    pushed += e->pushed;
    if (pushed < 0) {
      entry.reason = "the stack pointer goes above the entry's";
      break;
    }
    offset += e->insn.length;
  }
  if (entry.reason.empty()) entry.reason = "no emulated instruction in the first 16";
  return entry;
}

std::vector<std::vector<uint32_t>> branchTargetsInto(std::span<const uint8_t> text, uint64_t textAddress,
                                                     std::span<const CodeRange> ranges) {
  std::vector<std::vector<uint32_t>> targets(ranges.size());
  if (ranges.empty()) return targets;
  const uint64_t lowest = ranges.front().start;
  const uint64_t highest = ranges.back().start + ranges.back().length;
  const auto consider = [&](uint64_t target) {
    if (target <= lowest || target >= highest) return;
    // The last range starting before the target.
    const auto it = std::upper_bound(ranges.begin(), ranges.end(), target,
                                     [](uint64_t t, const CodeRange& r) { return t < r.start; });
    if (it == ranges.begin()) return;
    const auto& r = *(it - 1);
    if (target > r.start && target < r.start + r.length)
      targets[static_cast<size_t>(it - 1 - ranges.begin())].push_back(static_cast<uint32_t>(target - r.start));
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t b = text[i];
    const uint64_t at = textAddress + i;
    if ((b == 0xeb || (b >= 0x70 && b <= 0x7f)) && i + 2 <= text.size()) {
      consider(at + 2 + static_cast<int64_t>(static_cast<int8_t>(text[i + 1])));
    } else if ((b == 0xe8 || b == 0xe9) && i + 5 <= text.size()) {
      consider(at + 5 + static_cast<int64_t>(le32(text, i + 1)));
    } else if (b == 0x0f && i + 6 <= text.size() && text[i + 1] >= 0x80 && text[i + 1] <= 0x8f) {
      consider(at + 6 + static_cast<int64_t>(le32(text, i + 2)));
    }
  }
  for (auto& t : targets) {
    std::sort(t.begin(), t.end());
    t.erase(std::unique(t.begin(), t.end()), t.end());
  }
  return targets;
}

std::vector<ProbeSite> chooseProbeSites(const std::string& path, std::span<const TextSegment> text,
                                        std::span<const SiteQuery> queries, bool entriesOnly) {
  std::vector<ProbeSite> sites(queries.size());
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    for (auto& s : sites) s.reason = "the file cannot be read";
    return sites;
  }
  // Each function's first bytes, and the ranges a branch must not land in.
  std::vector<std::vector<uint8_t>> code(queries.size());
  std::vector<size_t> order(queries.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    order[i] = i;
    code[i].resize(kPrologueBytes);
    const ssize_t n = ::pread(fd, code[i].data(), kPrologueBytes, static_cast<off_t>(queries[i].fileOffset));
    code[i].resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return queries[a].vaddr < queries[b].vaddr; });
  std::vector<CodeRange> ranges;
  std::vector<size_t> rangeOf(queries.size());
  for (size_t i : order) {
    const uint64_t start = queries[i].vaddr;
    if (!ranges.empty() && ranges.back().start == start) {  // an alias
      rangeOf[i] = ranges.size() - 1;
      continue;
    }
    uint32_t length = kPrologueBytes;
    if (queries[i].size) length = static_cast<uint32_t>(std::min<uint64_t>(length, queries[i].size));
    if (!ranges.empty() && ranges.back().start + ranges.back().length > start)
      ranges.back().length = static_cast<uint32_t>(start - ranges.back().start);
    ranges.push_back({start, length});
    rangeOf[i] = ranges.size() - 1;
  }
  std::vector<std::vector<uint32_t>> targets(ranges.size());
  if (entriesOnly) text = {};  // no site will move: nothing to scan
  constexpr size_t kChunk = 64 * 1024, kOverlap = 8;
  std::vector<uint8_t> buffer(kChunk + kOverlap);
  for (const auto& segment : text) {
    for (uint64_t pos = 0; pos < segment.fileSize; pos += kChunk) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk + kOverlap, segment.fileSize - pos));
      const ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(segment.fileOffset + pos));
      if (n <= 0) break;
      const auto found = branchTargetsInto(std::span(buffer.data(), static_cast<size_t>(n)), segment.vaddr + pos, ranges);
      for (size_t r = 0; r < ranges.size(); ++r) targets[r].insert(targets[r].end(), found[r].begin(), found[r].end());
    }
  }
  ::close(fd);
  for (size_t i = 0; i < queries.size(); ++i) {
    // Never past the function's end (or the next function probed).
    code[i].resize(std::min<size_t>(code[i].size(), ranges[rangeOf[i]].length));
    if (code[i].empty()) {
      sites[i].reason = "the function's bytes cannot be read";
      continue;
    }
    if (entriesOnly) {
      const auto first = decodePrologue(code[i], 1);
      sites[i].instruction = first.empty() ? "(not decoded)" : first[0].text;
      sites[i].emulated = !first.empty() && first[0].emulated;
      sites[i].reason = "--probe-sites=entry";
      continue;
    }
    sites[i] = chooseProbeSite(code[i], queries[i].needs, targets[rangeOf[i]]);
  }
  return sites;
}

}  // namespace heaptrail::recorder
