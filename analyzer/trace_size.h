// Where a trace's bytes go: bytes per event, and per column of the event encoding (each
// column compressed alone, chunk by chunk, as the writer compresses whole chunks), for
// `heaptrail info` and tools/bench/trace_columns.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace heaptrail::analyzer {

struct ColumnSize {
  std::string name;
  uint64_t rawBytes = 0;
  uint64_t compressedBytes = 0;  // compressed alone (zstd level 3, per chunk)
};

struct TraceSize {
  uint64_t fileBytes = 0;
  uint64_t events = 0;
  uint32_t schemaVersion = 0;
  std::vector<ColumnSize> columns;  // largest compressed first
};

// Reads the trace once more. Throws TraceError like TraceReader.
TraceSize measureTraceSize(const std::filesystem::path& path);

}  // namespace heaptrail::analyzer
