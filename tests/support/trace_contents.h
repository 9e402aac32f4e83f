#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "schema/chunk_builder.h"
#include "schema/trace_reader.h"

namespace heaptrail::testing {

// A whole trace in plain structs, for tests to compare against what a program did.
struct TraceContents {
  uint32_t schemaVersion = 0;
  std::string kernelRelease, machine, allocatorObject;
  uint32_t pageSize = 0;
  uint64_t startTimeNs = 0, anchorClockNs = 0, anchorRealtimeNs = 0;
  uint64_t timeResolutionNs = 1;  // event times are rounded down to this
  std::vector<uint32_t> targetPids;
  std::vector<std::vector<std::string>> targetCommands;
  std::vector<std::string> probedFunctions;

  std::vector<schema::EventRecord> events;
  std::map<uint32_t, std::vector<uint64_t>> stacks;
  std::vector<schema::MappingRecord> mappings;
  std::vector<schema::ProcessRecord> processes;
  std::map<uint16_t, schema::FunctionRecord> functions;
  bool followForks = false;
  std::map<schema::EventKind, uint64_t> lostInChunks;
  std::vector<uint64_t> chunkSequences;
  uint64_t duplicateStackIds = 0;

  schema::TraceEnd end = schema::TraceEnd::Reading;
  std::string problem;
  bool hasFooter = false;
  schema::EndReason endReason = schema::EndReason::ERROR;
  uint64_t footerEvents = 0, footerStacks = 0, footerChunks = 0;
  std::map<schema::EventKind, uint64_t> footerLost;

  std::vector<schema::EventRecord> eventsWithSize(uint64_t size) const;
  std::vector<schema::EventRecord> eventsOfKind(schema::EventKind kind) const;
  // The symbol of the function an event came from ("" if unknown).
  std::string functionName(const schema::EventRecord& e) const;
  // The mapping of `pid` holding `address` that was newest at `timeNs` (an event's time,
  // which may be rounded down by up to the resolution: mappings keep exact times).
  const schema::MappingRecord* mappingAt(uint32_t pid, uint64_t address, uint64_t timeNs) const;
};

TraceContents loadTrace(const std::filesystem::path& path);

}  // namespace heaptrail::testing
