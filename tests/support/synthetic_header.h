// The header of a trace written without a recorder (tests, the benchmark's trace
// generator): a plausible machine and one target started by the recorder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "schema/trace.capnp.h"

namespace heaptrail::testing {

struct SyntheticHeader {
  uint64_t startNs = 1'000'000'000;  // Header.startTimeNs, also the wall-clock anchor
  uint32_t pid = 4242;
  std::vector<std::string> commandLine = {"./app", "--flag"};
  std::string recorderVersion = "test";
  std::string kernelRelease = "6.1.0-test";
};

inline void fillSyntheticHeader(schema::Header::Builder h, const SyntheticHeader& spec = {}) {
  h.setRecorderVersion(spec.recorderVersion);
  h.setKernelRelease(spec.kernelRelease);
  h.setMachine("x86_64");
  h.setHostname("box");
  h.setPageSize(4096);
  h.setClock(schema::Clock::MONOTONIC);
  h.getWallClockAnchor().setClockNs(spec.startNs);
  h.getWallClockAnchor().setRealtimeNs(1'700'000'000'000'000'000ull);
  h.setStartTimeNs(spec.startNs);
  auto target = h.initTargets(1)[0];
  target.setPid(spec.pid);
  auto argv = target.initCommandLine(static_cast<unsigned>(spec.commandLine.size()));
  for (unsigned i = 0; i < spec.commandLine.size(); ++i) argv.set(i, spec.commandLine[i]);
  target.setStartedByRecorder(true);
  h.initOptions().setStackDepth(64);
}

}  // namespace heaptrail::testing
