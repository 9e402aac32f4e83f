// The plain C++ form of the trace's records, written by ChunkBuilder and read back by
// record_readers.h; the analyzer and the tests use them as they are.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "schema/trace.capnp.h"

namespace heaptrail::schema {

struct EventRecord {
  EventKind kind = EventKind::MALLOC;
  uint64_t timeNs = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint64_t address = 0;
  uint64_t size = 0;
  uint32_t stackId = 0;   // 0: no stack
  uint16_t function = 0;  // 0: unknown
};

struct FunctionRecord {
  uint16_t id = 0;
  std::string symbol;
  EventKind kind = EventKind::MALLOC;
  std::string object;
  bool custom = false;
  uint32_t probeOffset = 0;      // where the uprobe sits, from the symbol (0: the entry)
  std::string probeInstruction;
  bool probeEmulated = false;
  uint64_t symbolFileOffset = 0;
  bool allocatorLibrary = false;  // defined in an allocator library (trace.capnp)
};

struct MappingRecord {
  uint64_t timeNs = 0;
  uint32_t pid = 0;
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t fileOffset = 0;
  std::string path;
  std::string buildId;  // raw bytes
  MappingSource source = MappingSource::PROC_MAPS;
  bool executable = true;
  uint64_t inode = 0;
};

struct ProcessRecord {
  uint64_t timeNs = 0;
  uint32_t pid = 0;
  ProcessEventKind kind = ProcessEventKind::EXEC;
  uint32_t parentPid = 0;
  std::string command;
  bool exitStatusKnown = false;
  int32_t exitCode = 0;
  int32_t signal = 0;
  bool coreDumped = false;
  std::vector<std::string> commandLine;
};

// The name (comm) a thread had when it made an event (kernel recordings).
struct ThreadNameRecord {
  uint64_t timeNs = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string name;
};

}  // namespace heaptrail::schema
