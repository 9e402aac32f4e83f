#include "analyzer/report/frame_names.h"

#include <algorithm>
#include <filesystem>

#include "common/hex.h"

namespace heaptrail::analyzer::report {

std::vector<FunctionAt> functionsAt(const Frame& f) {
  if (!f.mapped) return {{common::hexNumber(f.address), "", 0, false, false}};
  const std::string moduleOffset = std::filesystem::path(f.module).filename().string() + "+" + common::hexNumber(f.offset);
  if (!f.symbolized || !f.symbol.resolved()) return {{moduleOffset, "", 0, false, false}};
  std::vector<FunctionAt> out;
  for (size_t i = 0; i < f.symbol.frames.size(); ++i) {
    const auto& s = f.symbol.frames[i];
    const bool known = !s.function.empty();
    out.push_back({known ? s.function : moduleOffset, s.file, s.line, f.symbol.isInlined(i), known});
  }
  if (out.empty()) out.push_back({moduleOffset, "", 0, false, false});
  return out;
}

std::vector<FunctionAt> rootFirst(const StackReport& stack) {
  std::vector<FunctionAt> out;
  for (const Frame& f : stack.frames) {
    auto functions = functionsAt(f);
    out.insert(out.end(), functions.begin(), functions.end());
  }
  std::reverse(out.begin(), out.end());
  if (out.empty()) out.push_back({placeholderName(stack), "", 0, false, false});
  return out;
}

std::string placeholderName(const StackReport& stack) {
  if (stack.stackId == 0) return "[no stack]";
  return "[stack " + std::to_string(stack.stackId) + " missing]";
}

}  // namespace heaptrail::analyzer::report
