#include "recorder/unwind/call_frames.h"

#include <cstring>
#include <map>
#include <optional>
#include <string>


namespace heaptrail::recorder::unwind {
namespace {

// The DWARF register numbers the walker follows.
struct Registers {
  uint64_t stackPointer, framePointer, returnAddress;
};
constexpr Registers kX86_64 = {7, 6, 16};    // rsp, rbp, the return address column
constexpr Registers kAarch64 = {31, 29, 30};  // sp, x29, x30 (the link register)

constexpr Registers registersOf(CfiArch arch) { return arch == CfiArch::Aarch64 ? kAarch64 : kX86_64; }

// Pointer encodings (DW_EH_PE_*).
constexpr uint8_t kPeOmit = 0xff;
constexpr uint8_t kPeFormatMask = 0x0f;
constexpr uint8_t kPeApplicationMask = 0x70;
constexpr uint8_t kPePcrel = 0x10;
constexpr uint8_t kPeDatarel = 0x30;

// A bounds-checked cursor: every read past the end sets `failed` and yields 0.
class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, size_t pos = 0) : bytes_(bytes), pos_(pos) {}
  size_t pos() const { return pos_; }
  bool failed() const { return failed_; }
  bool atEnd() const { return pos_ >= bytes_.size(); }
  void seek(size_t pos) {
    if (pos > bytes_.size()) failed_ = true;
    pos_ = pos > bytes_.size() ? bytes_.size() : pos;
  }
  void skip(uint64_t n) {
    if (n > bytes_.size() - pos_) {
      failed_ = true;
      pos_ = bytes_.size();
    } else {
      pos_ += n;
    }
  }
  template <typename T>
  T fixed() {
    T value{};
    if (sizeof(T) > bytes_.size() - pos_) {
      failed_ = true;
      pos_ = bytes_.size();
      return value;
    }
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  uint64_t uleb() {
    uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      const uint8_t byte = fixed<uint8_t>();
      if (failed_) return 0;
      if (shift < 64) value |= uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return value;
    }
  }
  int64_t sleb() {
    uint64_t value = 0;
    unsigned shift = 0;
    uint8_t byte = 0;
    do {
      byte = fixed<uint8_t>();
      if (failed_) return 0;
      if (shift < 64) value |= uint64_t{byte & 0x7fu} << shift;
      shift += 7;
    } while (byte & 0x80);
    if (shift < 64 && (byte & 0x40)) value |= ~uint64_t{0} << shift;
    return static_cast<int64_t>(value);
  }
  std::string cString() {
    std::string text;
    while (!failed_) {
      const char c = static_cast<char>(fixed<uint8_t>());
      if (failed_ || c == 0) break;
      text.push_back(c);
    }
    return text;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  bool failed_ = false;
};

struct Cie {
  uint64_t codeAlign = 1;
  int64_t dataAlign = 1;
  uint64_t returnRegister = 0;  // from the CIE
  uint8_t fdeEncoding = 0;  // DW_EH_PE_absptr
  uint8_t addressSize = 8;
  bool hasAugmentationData = false;
  bool signalFrame = false;
  size_t instructionsBegin = 0, instructionsEnd = 0;
};

// The rule of one register, as far as the walker cares.
struct RegisterRule {
  enum Kind : uint8_t { Unset, Undefined, SameValue, Offset, Other } kind = Unset;
  int64_t offset = 0;  // Offset: saved at CFA + offset
  bool operator==(const RegisterRule&) const = default;
};

struct State {
  enum CfaKind : uint8_t { Register, Expression } cfaKind = Register;
  uint64_t cfaRegister = 0;
  int64_t cfaOffset = 0;
  RegisterRule fp, ra;  // the frame pointer (rbp, x29) and the return address
};

// Reads an encoded pointer at the cursor; `fieldVaddr` is the address of the field.
std::optional<uint64_t> readEncoded(Reader& r, uint8_t encoding, uint64_t sectionVaddr, uint8_t addressSize) {
  if (encoding == kPeOmit) return std::nullopt;
  const uint64_t fieldVaddr = sectionVaddr + r.pos();
  uint64_t value = 0;
  switch (encoding & kPeFormatMask) {
    case 0x00: value = addressSize == 4 ? r.fixed<uint32_t>() : r.fixed<uint64_t>(); break;
    case 0x01: value = r.uleb(); break;
    case 0x02: value = r.fixed<uint16_t>(); break;
    case 0x03: value = r.fixed<uint32_t>(); break;
    case 0x04: value = r.fixed<uint64_t>(); break;
    case 0x09: value = static_cast<uint64_t>(r.sleb()); break;
    case 0x0a: value = static_cast<uint64_t>(static_cast<int64_t>(r.fixed<int16_t>())); break;
    case 0x0b: value = static_cast<uint64_t>(static_cast<int64_t>(r.fixed<int32_t>())); break;
    case 0x0c: value = r.fixed<uint64_t>(); break;
    default: return std::nullopt;
  }
  if (r.failed()) return std::nullopt;
  switch (encoding & kPeApplicationMask) {
    case 0x00: break;
    case kPePcrel: value += fieldVaddr; break;
    case kPeDatarel: break;  // not used by .eh_frame on x86-64; taken as is
    default: return std::nullopt;
  }
  return value;
}

// The same size as readEncoded, without a base (an FDE's address range).
std::optional<uint64_t> readEncodedLength(Reader& r, uint8_t encoding, uint8_t addressSize) {
  return readEncoded(r, static_cast<uint8_t>(encoding & kPeFormatMask), 0, addressSize);
}

uint32_t packX86_64Rule(const State& s) {
  if (s.ra.kind == RegisterRule::Undefined) return HT_RULE(HT_CFA_STOP, 0, 0);
  const bool raAtCfaMinus8 = s.ra.kind == RegisterRule::Offset && s.ra.offset == -8;
  if (s.cfaKind != State::Register || (s.cfaRegister != kX86_64.stackPointer && s.cfaRegister != kX86_64.framePointer) ||
      !raAtCfaMinus8 || s.cfaOffset < 0 || s.cfaOffset >= static_cast<int64_t>(HT_CFA_OFFSET_LIMIT))
    return HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);
  uint32_t rbp = HT_RBP_UNKNOWN;
  if (s.fp.kind == RegisterRule::Unset || s.fp.kind == RegisterRule::SameValue) {
    rbp = HT_RBP_UNCHANGED;
  } else if (s.fp.kind == RegisterRule::Offset && s.fp.offset < 0 && s.fp.offset % 8 == 0 &&
             -s.fp.offset / 8 < HT_RBP_UNKNOWN) {
    rbp = static_cast<uint32_t>(-s.fp.offset / 8);
  }
  return HT_RULE(s.cfaRegister == kX86_64.stackPointer ? HT_CFA_RSP : HT_CFA_RBP, s.cfaOffset, rbp);
}

// AArch64: x30 has no rule in the CIE (it holds the return address until a function
// saves it), x29 is kept only as the lower half of the frame record {x29, x30}.
uint32_t packAarch64Rule(const State& s) {
  if (s.ra.kind == RegisterRule::Undefined) return HT_RULE(HT_CFA_STOP, 0, 0);
  constexpr uint32_t unsupported = HT_A64_RULE(HT_CFA_UNSUPPORTED, 0, 0, 0);
  if (s.cfaKind != State::Register ||
      (s.cfaRegister != kAarch64.stackPointer && s.cfaRegister != kAarch64.framePointer) || s.cfaOffset < 0 ||
      s.cfaOffset % 8 != 0 || s.cfaOffset >= static_cast<int64_t>(HT_A64_CFA_OFFSET_LIMIT))
    return unsupported;
  uint32_t lr = HT_A64_LR_IN_REGISTER;
  if (s.ra.kind == RegisterRule::Offset) {
    if (s.ra.offset >= 0 || s.ra.offset % 8 != 0 || -s.ra.offset / 8 >= static_cast<int64_t>(HT_A64_LR_LIMIT))
      return unsupported;
    lr = static_cast<uint32_t>(-s.ra.offset / 8);
  } else if (s.ra.kind != RegisterRule::Unset && s.ra.kind != RegisterRule::SameValue) {
    return unsupported;
  }
  uint32_t fp = HT_A64_FP_UNKNOWN;
  if (s.fp.kind == RegisterRule::Unset || s.fp.kind == RegisterRule::SameValue)
    fp = HT_A64_FP_UNCHANGED;
  else if (s.fp.kind == RegisterRule::Offset && lr != HT_A64_LR_IN_REGISTER && s.fp.offset == s.ra.offset - 8)
    fp = HT_A64_FP_BELOW_LR;
  return HT_A64_RULE(s.cfaRegister == kAarch64.stackPointer ? HT_CFA_RSP : HT_CFA_RBP, s.cfaOffset, fp, lr);
}

uint32_t packRule(CfiArch arch, const State& s) {
  return arch == CfiArch::Aarch64 ? packAarch64Rule(s) : packX86_64Rule(s);
}

class Interpreter {
 public:
  Interpreter(std::span<const uint8_t> bytes, uint64_t sectionVaddr, const Cie& cie, CfiArch arch)
      : bytes_(bytes), sectionVaddr_(sectionVaddr), cie_(cie), arch_(arch), registers_(registersOf(arch)) {}

  // Runs the CIE's initial instructions; false when they cannot be decoded.
  bool runInitial() {
    state_ = State{};
    state_.cfaRegister = registers_.stackPointer;
    if (!run(cie_.instructionsBegin, cie_.instructionsEnd, nullptr)) return false;
    initial_ = state_;
    return true;
  }

  bool runFde(size_t begin, size_t end, FrameFunction& fn) {
    state_ = initial_;
    stack_.clear();
    loc_ = fn.start;
    fn.rows.clear();
    fn.rows.push_back({fn.start, rule()});
    return run(begin, end, &fn);
  }

 private:
  uint32_t rule() const { return cie_.signalFrame ? HT_RULE(HT_CFA_UNSUPPORTED, 0, 0) : packRule(arch_, state_); }

  void advanceTo(uint64_t pc, FrameFunction* fn) {
    if (!fn) return;
    loc_ = pc;
  }
  // Emits the current state at loc_ (after the instructions at one location ran).
  void emit(FrameFunction* fn) {
    if (!fn || loc_ >= fn->end) return;
    const uint32_t r = rule();
    if (fn->rows.back().pc == loc_)
      fn->rows.back().rule = r;
    else if (loc_ > fn->rows.back().pc)
      fn->rows.push_back({loc_, r});
  }
  RegisterRule* tracked(uint64_t reg) {
    if (reg == registers_.framePointer) return &state_.fp;
    if (reg == cie_.returnRegister) return &state_.ra;
    return nullptr;
  }
  RegisterRule initialRule(uint64_t reg) const {
    if (reg == registers_.framePointer) return initial_.fp;
    if (reg == cie_.returnRegister) return initial_.ra;
    return {};
  }
  void setRule(uint64_t reg, RegisterRule rule) {
    if (RegisterRule* r = tracked(reg)) *r = rule;
  }

  bool run(size_t begin, size_t end, FrameFunction* fn) {
    Reader r(bytes_.first(end), begin);
    while (!r.atEnd()) {
      const uint8_t op = r.fixed<uint8_t>();
      const uint8_t high = op >> 6, low = op & 0x3f;
      uint64_t advance = 0;
      bool advances = false;
      if (high == 1) {
        advance = low * cie_.codeAlign;
        advances = true;
      } else if (high == 2) {
        setRule(low, {RegisterRule::Offset, static_cast<int64_t>(r.uleb()) * cie_.dataAlign});
      } else if (high == 3) {
        setRule(low, initialRule(low));
      } else {
        switch (op) {
          case 0x00: break;  // nop
          case 0x01: {       // set_loc
            const auto pc = readEncoded(r, cie_.fdeEncoding, sectionVaddr_, cie_.addressSize);
            if (!pc || *pc < loc_) return false;
            emit(fn);
            advanceTo(*pc, fn);
            continue;
          }
          case 0x02: advance = r.fixed<uint8_t>() * cie_.codeAlign; advances = true; break;
          case 0x03: advance = r.fixed<uint16_t>() * cie_.codeAlign; advances = true; break;
          case 0x04: advance = uint64_t{r.fixed<uint32_t>()} * cie_.codeAlign; advances = true; break;
          case 0x05: {  // offset_extended
            const uint64_t reg = r.uleb();
            setRule(reg, {RegisterRule::Offset, static_cast<int64_t>(r.uleb()) * cie_.dataAlign});
            break;
          }
          case 0x06: {  // restore_extended
            const uint64_t reg = r.uleb();
            setRule(reg, initialRule(reg));
            break;
          }
          case 0x07: setRule(r.uleb(), {RegisterRule::Undefined}); break;
          case 0x08: setRule(r.uleb(), {RegisterRule::SameValue}); break;
          case 0x09: {  // register: saved in another register
            const uint64_t reg = r.uleb();
            r.uleb();
            setRule(reg, {RegisterRule::Other});
            break;
          }
          case 0x0a: stack_.push_back(state_); break;  // remember_state
          case 0x0b:                                    // restore_state
            if (stack_.empty()) return false;
            // The CFA and the registers come back (DWARF 5 6.4.2.4); so does the whole
            // state here, as GCC's and LLVM's unwinders do.
            state_ = stack_.back();
            stack_.pop_back();
            break;
          case 0x0c:  // def_cfa
            state_.cfaKind = State::Register;
            state_.cfaRegister = r.uleb();
            state_.cfaOffset = static_cast<int64_t>(r.uleb());
            break;
          case 0x0d:  // def_cfa_register
            state_.cfaKind = State::Register;
            state_.cfaRegister = r.uleb();
            break;
          case 0x0e: state_.cfaOffset = static_cast<int64_t>(r.uleb()); break;  // def_cfa_offset
          case 0x0f:                                                            // def_cfa_expression
            state_.cfaKind = State::Expression;
            r.skip(r.uleb());
            break;
          case 0x10:  // expression
          case 0x16: {  // val_expression
            const uint64_t reg = r.uleb();
            r.skip(r.uleb());
            setRule(reg, {RegisterRule::Other});
            break;
          }
          case 0x11: {  // offset_extended_sf
            const uint64_t reg = r.uleb();
            setRule(reg, {RegisterRule::Offset, r.sleb() * cie_.dataAlign});
            break;
          }
          case 0x12:  // def_cfa_sf
            state_.cfaKind = State::Register;
            state_.cfaRegister = r.uleb();
            state_.cfaOffset = r.sleb() * cie_.dataAlign;
            break;
          case 0x13: state_.cfaOffset = r.sleb() * cie_.dataAlign; break;  // def_cfa_offset_sf
          case 0x14:                                                      // val_offset
          case 0x15: {                                                    // val_offset_sf
            const uint64_t reg = r.uleb();
            if (op == 0x14) r.uleb(); else r.sleb();
            setRule(reg, {RegisterRule::Other});
            break;
          }
          case 0x2d: break;            // AArch64 negate_ra_state (x86: GNU_window_save): no operands
          case 0x2e: r.uleb(); break;  // GNU_args_size
          case 0x2f: {                 // GNU_negative_offset_extended
            const uint64_t reg = r.uleb();
            setRule(reg, {RegisterRule::Offset, -static_cast<int64_t>(r.uleb()) * cie_.dataAlign});
            break;
          }
          default: return false;  // an operation we do not know: its operands cannot be skipped
        }
      }
      if (r.failed()) return false;
      if (advances) {
        emit(fn);
        advanceTo(loc_ + advance, fn);
      }
    }
    emit(fn);
    return true;
  }

  std::span<const uint8_t> bytes_;
  uint64_t sectionVaddr_;
  const Cie& cie_;
  CfiArch arch_;
  Registers registers_;
  State state_, initial_;
  std::vector<State> stack_;
  uint64_t loc_ = 0;
};

std::optional<Cie> parseCie(Reader& r, size_t end, FrameSection kind) {
  Cie cie;
  const uint8_t version = r.fixed<uint8_t>();
  if (version != 1 && version != 3 && version != 4) return std::nullopt;
  const std::string augmentation = r.cString();
  if (version == 4) {
    cie.addressSize = r.fixed<uint8_t>();
    r.fixed<uint8_t>();  // segment selector size
    if (cie.addressSize != 4 && cie.addressSize != 8) return std::nullopt;
  }
  cie.codeAlign = r.uleb();
  cie.dataAlign = r.sleb();
  cie.returnRegister = version == 1 ? r.fixed<uint8_t>() : r.uleb();
  if (kind == FrameSection::DebugFrame) cie.fdeEncoding = cie.addressSize == 4 ? 0x03 : 0x04;
  if (!augmentation.empty() && augmentation[0] == 'z') {
    cie.hasAugmentationData = true;
    const uint64_t length = r.uleb();
    const size_t dataEnd = r.pos() + length;
    for (size_t i = 1; i < augmentation.size() && !r.failed(); ++i) {
      switch (augmentation[i]) {
        case 'R': cie.fdeEncoding = r.fixed<uint8_t>(); break;
        case 'L': r.fixed<uint8_t>(); break;
        case 'P': {
          const uint8_t encoding = r.fixed<uint8_t>();
          readEncoded(r, static_cast<uint8_t>(encoding & 0x7f), 0, cie.addressSize);
          break;
        }
        case 'S': cie.signalFrame = true; break;
        case 'B': break;
        default: i = augmentation.size(); break;  // unknown: the length lets us skip the rest
      }
    }
    r.seek(dataEnd);
  } else if (!augmentation.empty() && augmentation != "eh") {
    return std::nullopt;  // unknown augmentation without a length: cannot be parsed
  }
  if (r.failed() || r.pos() > end) return std::nullopt;
  cie.instructionsBegin = r.pos();
  cie.instructionsEnd = end;
  return cie;
}

}  // namespace

ht_frame_rule ruleFields(CfiArch arch, uint32_t rule) {
  return arch == CfiArch::Aarch64 ? ht_aarch64_rule_fields(rule) : ht_x86_64_rule_fields(rule);
}

DecodedFrames decodeCallFrames(std::span<const uint8_t> bytes, uint64_t sectionVaddr, FrameSection kind,
                               CfiArch arch) {
  DecodedFrames out;
  std::map<size_t, std::optional<Cie>> cies;  // by offset in the section
  const auto cieAt = [&](size_t offset) -> const Cie* {
    auto it = cies.find(offset);
    if (it == cies.end()) {
      std::optional<Cie> cie;
      Reader r(bytes, offset);
      uint64_t length = r.fixed<uint32_t>();
      bool is64 = false;
      if (length == 0xffffffff) {
        length = r.fixed<uint64_t>();
        is64 = true;
      }
      const size_t start = r.pos();
      if (!r.failed() && length <= bytes.size() - start) {
        const uint64_t id = is64 ? r.fixed<uint64_t>() : r.fixed<uint32_t>();
        const bool isCie = kind == FrameSection::EhFrame ? id == 0
                                                         : id == (is64 ? ~uint64_t{0} : uint64_t{0xffffffff});
        if (isCie && !r.failed()) cie = parseCie(r, start + length, kind);
      }
      it = cies.emplace(offset, cie).first;
    }
    return it->second ? &*it->second : nullptr;
  };

  Reader r(bytes);
  while (!r.atEnd()) {
    const size_t entryOffset = r.pos();
    uint64_t length = r.fixed<uint32_t>();
    if (r.failed()) break;
    if (length == 0) {
      if (kind == FrameSection::EhFrame) break;  // the terminator
      continue;
    }
    bool is64 = false;
    if (length == 0xffffffff) {
      length = r.fixed<uint64_t>();
      is64 = true;
    }
    const size_t start = r.pos();
    if (r.failed() || length > bytes.size() - start) {
      ++out.malformedEntries;
      break;
    }
    const size_t end = start + length;
    const uint64_t id = is64 ? r.fixed<uint64_t>() : r.fixed<uint32_t>();
    const bool isCie =
        kind == FrameSection::EhFrame ? id == 0 : id == (is64 ? ~uint64_t{0} : uint64_t{0xffffffff});
    if (isCie) {
      if (!cieAt(entryOffset)) ++out.malformedEntries;
      r.seek(end);
      continue;
    }
    // An FDE: its CIE is `id` bytes before the id field (.eh_frame), or at offset `id`.
    size_t cieOffset = 0;
    if (kind == FrameSection::EhFrame) {
      const size_t idField = start;
      if (id > idField) {
        ++out.malformedEntries;
        r.seek(end);
        continue;
      }
      cieOffset = idField - id;
    } else {
      cieOffset = id;
    }
    const Cie* cie = cieOffset < bytes.size() ? cieAt(cieOffset) : nullptr;
    if (!cie) {
      ++out.malformedEntries;
      r.seek(end);
      continue;
    }
    const auto pcBegin = readEncoded(r, cie->fdeEncoding, sectionVaddr, cie->addressSize);
    const auto pcRange = readEncodedLength(r, cie->fdeEncoding, cie->addressSize);
    if (cie->hasAugmentationData) r.skip(r.uleb());
    if (!pcBegin || !pcRange || r.failed() || r.pos() > end) {
      ++out.malformedEntries;
      r.seek(end);
      continue;
    }
    if (*pcRange == 0 || *pcBegin + *pcRange < *pcBegin) {
      r.seek(end);
      continue;
    }
    FrameFunction fn{*pcBegin, *pcBegin + *pcRange, {}};
    Interpreter interpreter(bytes, sectionVaddr, *cie, arch);
    if (interpreter.runInitial() && interpreter.runFde(r.pos(), end, fn))
      out.functions.push_back(std::move(fn));
    else
      ++out.malformedEntries;
    r.seek(end);
  }
  return out;
}

}  // namespace heaptrail::recorder::unwind
