// Frame-by-frame expectations on the stacks of `heaptrail analyze --format json`: the
// every-frame checks of the samples built without frame pointers, shared by the x86-64
// recordings (cfi_stacks_test.cpp) and the emulated arm64 device (tests/arm64).
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/source_markers.h"

namespace heaptrail::testing {

// One expected frame, or (anyFrom) one or more consecutive frames of a module.
struct Want {
  std::string function;  // empty: any
  std::string file;      // file name the path ends with; empty: any
  unsigned line = 0;     // 0: any
  std::string module;    // module path suffix; empty: any
  bool anyFrom = false;
};

// `function` at the line of `sourceDir/source` that holds `marker`.
inline Want at(const std::string& function, const std::filesystem::path& sourceDir, const std::string& source,
               const std::string& marker) {
  return {function, source, markerLine(sourceDir / source, marker), ""};
}
inline Want frame(const std::string& function, const std::string& module) { return {function, "", 0, module}; }
inline Want framesOf(const std::string& module) { return {"", "", 0, module, true}; }

inline std::string text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : std::string("(null)");
}

inline bool matches(const nlohmann::json& f, const Want& w) {
  if (!w.function.empty() && text(f.at("function")) != w.function) return false;
  if (!w.file.empty() && !text(f.at("file")).ends_with("/" + w.file)) return false;
  if (w.line && (!f.at("line").is_number() || f.at("line").get<unsigned>() != w.line)) return false;
  if (!w.module.empty() && !text(f.at("module")).ends_with(w.module)) return false;
  return true;
}

inline std::string describe(const nlohmann::json& frames) {
  std::ostringstream out;
  for (size_t i = 0; i < frames.size(); ++i)
    out << "  #" << i << " " << text(frames[i].at("function")) << " " << text(frames[i].at("file")) << ":"
        << (frames[i].at("line").is_number() ? frames[i].at("line").get<unsigned>() : 0) << " ["
        << text(frames[i].at("module")) << "]" << (frames[i].at("inlined").get<bool>() ? " (inlined)" : "") << "\n";
  return out.str();
}

// The whole stack, frame by frame, is `want` (and complete).
inline void expectStack(const nlohmann::json& leak, const std::vector<Want>& want) {
  const nlohmann::json& frames = leak.at("frames");
  EXPECT_FALSE(leak.contains("stack_incomplete")) << describe(frames);
  size_t i = 0;
  for (size_t w = 0; w < want.size(); ++w) {
    ASSERT_LT(i, frames.size()) << "missing frame for " << want[w].function << " " << want[w].module << "\n"
                                << describe(frames);
    ASSERT_TRUE(matches(frames[i], want[w])) << "frame #" << i << " is not " << want[w].function << " "
                                             << want[w].file << ":" << want[w].line << " " << want[w].module
                                             << "\n" << describe(frames);
    ++i;
    if (want[w].anyFrom)
      while (i < frames.size() && matches(frames[i], want[w]) && !(w + 1 < want.size() && matches(frames[i], want[w + 1])))
        ++i;
  }
  EXPECT_EQ(i, frames.size()) << "frames beyond the outermost expected one\n" << describe(frames);
}

inline const nlohmann::json* leakOf(const nlohmann::json& doc, uint64_t bytes) {
  for (const auto& leak : doc.at("leaks"))
    if (leak.at("bytes").get<uint64_t>() == bytes) return &leak;
  return nullptr;
}

// Every frame of every reported stack is in a mapping of the process (never
// "(no mapping)": string bytes, heap or stack addresses).
inline void expectEveryFrameMapped(const nlohmann::json& doc) {
  for (const auto& leak : doc.at("leaks"))
    for (const auto& f : leak.at("frames"))
      EXPECT_TRUE(f.at("module").is_string()) << "frame outside any executable mapping: " << f.dump();
}

// nofp_chain.c's leak of 73 bytes: chain_leaf, chain9 ... chain1, main, by function and line.
inline std::vector<Want> nofpChainFrames(const std::filesystem::path& sourceDir) {
  std::vector<Want> want = {at("chain_leaf", sourceDir, "nofp_chain.c", "ALLOC:chain_leaf")};
  for (int level = 9; level >= 1; --level) {
    const std::string name = "chain" + std::to_string(level);
    want.push_back(at(name, sourceDir, "nofp_chain.c", "CALL:" + name));
  }
  want.push_back(at("main", sourceDir, "nofp_chain.c", "CALL:main_chain"));
  return want;
}

}  // namespace heaptrail::testing
