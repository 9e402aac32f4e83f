#pragma once

#include <optional>
#include <string_view>

namespace heaptrail::recorder::unwind {

// --stack-mode: how the BPF walker unwinds (bpf/unwind_cfi.h).
enum class StackMode {
  Auto,  // unwind tables where a file has CFI, frame pointers in files without
  Cfi,   // unwind tables only: a file without CFI ends the stack (incomplete)
  Fp,    // frame pointers everywhere
};

inline const char* stackModeName(StackMode mode) {
  switch (mode) {
    case StackMode::Auto: return "auto";
    case StackMode::Cfi: return "cfi";
    case StackMode::Fp: return "fp";
  }
  return "auto";
}

inline std::optional<StackMode> parseStackMode(std::string_view text) {
  if (text == "auto") return StackMode::Auto;
  if (text == "cfi") return StackMode::Cfi;
  if (text == "fp") return StackMode::Fp;
  return std::nullopt;
}

}  // namespace heaptrail::recorder::unwind
