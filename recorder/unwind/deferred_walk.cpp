#include "recorder/unwind/deferred_walk.h"

#include <cstring>
#include <optional>

namespace heaptrail::recorder::unwind {
namespace {

constexpr uint64_t kMaxFrameBytes = 8u << 20;  // HT_MAX_FRAME_BYTES

// The copy of the stack from `base`, read page by page (HT_DEFER_STACK_CHUNKS): bytes of
// a chunk that could not be read are not there.
class StackCopy {
 public:
  StackCopy(uint64_t base, std::span<const uint8_t> bytes, uint32_t chunksRead)
      : base_(base), bytes_(bytes), chunksRead_(chunksRead) {}
  std::optional<uint64_t> word(uint64_t address) const {
    if (address < base_ || address - base_ > bytes_.size() || bytes_.size() - (address - base_) < 8)
      return std::nullopt;
    if (!read(address) || !read(address + 7)) return std::nullopt;
    uint64_t value;
    std::memcpy(&value, bytes_.data() + (address - base_), sizeof value);
    return value;
  }

 private:
  bool read(uint64_t address) const {
    const uint64_t firstPageEnd = (base_ | (HT_PAGE_BYTES - 1)) + 1;
    const uint64_t chunk = address < firstPageEnd ? 0 : 1 + (address - firstPageEnd) / HT_PAGE_BYTES;
    return chunk < 32 && (chunksRead_ >> chunk) & 1;
  }

  uint64_t base_;
  std::span<const uint8_t> bytes_;
  uint32_t chunksRead_;
};

}  // namespace

bool finishDeferredWalk(const UnwindMaps& maps, pid_t pid, const ht_resume& resume, std::span<const uint8_t> stack,
                        uint32_t maxFrames, std::vector<uint64_t>& frames) {
  const StackCopy memory(resume.sp, stack.first(std::min<size_t>(stack.size(), resume.stack_len)), resume.chunks_read);
  uint64_t pc = resume.pc, sp = resume.sp, bp = resume.bp;
  bool bpKnown = resume.bp_known, pending = resume.pending, stepped = resume.stepped;
  for (int i = 0; i <= HT_MAX_STACK_DEPTH; ++i) {
    const uint64_t lookup = (stepped || resume.ip_is_return) ? pc - 1 : pc;
    const auto m = maps.find(pid, lookup);
    if (!m) return false;
    if (pending) {
      if (frames.size() >= maxFrames || frames.size() >= HT_MAX_STACK_DEPTH) return true;
      frames.push_back(pc);
    }
    stepped = true;
    if (m->value.kind == HT_MAPPING_STOP) return false;
    uint64_t cfa = 0, nextBp = bp;
    uint32_t raSlots = 1;  // the frame record {fp, return address} at the frame pointer
    if (m->value.kind == HT_MAPPING_TABLE && m->table) {
      const ht_frame_rule rule = ruleFields(kHostCfiArch, m->table->ruleAtRow(static_cast<uint32_t>(lookup - m->value.bias)));
      if (rule.cfa_kind == HT_CFA_STOP) return true;
      if (rule.cfa_kind == HT_CFA_UNSUPPORTED || (rule.cfa_kind == HT_CFA_RBP && !bpKnown)) return false;
      // The return address still in the link register: the innermost frame only, and
      // a walk that was deferred has stepped past it.
      if (rule.ra_slots == 0) return false;
      cfa = (rule.cfa_kind == HT_CFA_RSP ? sp : bp) + rule.cfa_offset;
      raSlots = rule.ra_slots;
      if (rule.fp_slots == HT_FRAME_FP_UNKNOWN) {
        bpKnown = false;
      } else if (rule.fp_slots != 0) {
        const auto saved = memory.word(cfa - 8 * uint64_t{rule.fp_slots});
        if (!saved) return false;
        nextBp = *saved;
        bpKnown = true;
      }
    } else {
      if (bpKnown && bp == 0) return true;  // the end of the frame-pointer chain
      if (!bpKnown || bp < sp || (bp & 7) || bp - sp > kMaxFrameBytes) return false;
      const auto saved = memory.word(bp);
      if (!saved) return false;
      nextBp = *saved;
      cfa = bp + 16;
    }
    if (cfa <= sp || cfa - sp > kMaxFrameBytes) return false;
    const auto ra = memory.word(cfa - 8 * uint64_t{raSlots});
    if (!ra) return false;
#if defined(__aarch64__)
    const uint64_t address = *ra & 0x0000ffffffffffffULL;  // pointer authentication bits
#else
    const uint64_t address = *ra;
#endif
    if (address == 0) return true;
    pc = address;
    sp = cfa;
    bp = nextBp;
    pending = true;
  }
  return false;
}

}  // namespace heaptrail::recorder::unwind
