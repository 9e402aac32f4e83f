#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/support/bpf_required.h"
#include "tests/support/elf_oracle.h"
#include "tests/support/run_command.h"
#include "tests/support/temp_dir.h"
#include "tests/support/trace_contents.h"

namespace heaptrail::testing {

// Fixture for tests that run the real recorder (needs root): a temporary directory,
// recording a command, and naming the function of a recorded frame with binutils.
// HEAPTRAIL_RECORD_BIN and HEAPTRAIL_SAMPLES_DIR come from the build.
class RecordingTest : public ::testing::Test {
 protected:
  const std::string kRecorder = HEAPTRAIL_RECORD_BIN;
  const std::string kSamples = HEAPTRAIL_SAMPLES_DIR;

  void SetUp() override { HEAPTRAIL_REQUIRE_BPF_OR_SKIP(); }

  std::filesystem::path output(const std::string& name = "t.htr") const { return dir_ / name; }

  // Records `command` (started with `-- command`) with `options`, expecting success.
  TraceContents record(const std::vector<std::string>& command, const std::vector<std::string>& options = {}) {
    std::vector<std::string> argv = {kRecorder, "-o", output().string()};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    last_ = runCommand(argv);
    EXPECT_EQ(last_.exitCode, 0) << last_.err;
    return loadTrace(output());
  }

  // The function (as nm names it) holding frame `frame` of an event's stack.
  std::string functionOf(const TraceContents& t, const schema::EventRecord& e, size_t frame = 0) {
    const auto& frames = t.stacks.at(e.stackId);
    if (frame >= frames.size()) return "<no frame>";
    const uint64_t address = frames[frame] - 1;  // a return address: look at the call
    const auto* m = t.mappingAt(e.pid, address, e.timeNs);
    if (!m) return "<unmapped>";
    auto& oracle = oracles_.try_emplace(m->path, m->path).first->second;
    const std::string name = oracle.functionAt(m->fileOffset + (address - m->start));
    return name.empty() ? "<in " + m->path + ">" : name;
  }

  TempDir tmp_;
  const std::filesystem::path& dir_ = tmp_.path();
  CommandResult last_;
  std::map<std::string, ElfOracle> oracles_;
};

}  // namespace heaptrail::testing
