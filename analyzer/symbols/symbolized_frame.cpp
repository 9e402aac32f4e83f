#include "analyzer/symbols/symbolized_frame.h"

namespace heaptrail::symbols {

std::string_view toString(FrameStatus status) {
  switch (status) {
    case FrameStatus::Resolved: return "Resolved";
    case FrameStatus::FileMissing: return "FileMissing";
    case FrameStatus::BuildIdMismatch: return "BuildIdMismatch";
    case FrameStatus::NotElf: return "NotElf";
    case FrameStatus::NoSymbols: return "NoSymbols";
    case FrameStatus::OutsideImage: return "OutsideImage";
  }
  return "Unknown";
}

const SourceFrame& SymbolizedFrame::outermost() const {
  static const SourceFrame kNone;
  return frames.empty() ? kNone : frames.back();
}

std::string SymbolizedFrame::whyUnresolved() const {
  if (resolved()) return {};
  std::string why(toString(status));
  if (!reason.empty()) why += ": " + reason;
  return why;
}

}  // namespace heaptrail::symbols
