// trace_columns: where a heaptrail trace's bytes go, per column of the event encoding
// (version 1's fixed-width columns or version 2's packed streams), each column
// compressed alone, chunk by chunk, with zstd at the recorder's level (3), as the file
// does for whole chunks. The same figures as `heaptrail info`, one line per column.
//
//   trace_columns TRACE
#include <cstdio>

#include "analyzer/trace_size.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: trace_columns TRACE\n");
    return 2;
  }
  const auto size = heaptrail::analyzer::measureTraceSize(argv[1]);
  const double events = size.events ? static_cast<double>(size.events) : 1.0;
  std::printf("events=%llu file_bytes=%llu schema=%u bytes_per_event=%.3f\n",
              static_cast<unsigned long long>(size.events), static_cast<unsigned long long>(size.fileBytes),
              size.schemaVersion, static_cast<double>(size.fileBytes) / events);
  for (const auto& c : size.columns)
    std::printf("column=%s raw_per_event=%.2f compressed_per_event=%.3f share=%.1f%%\n", c.name.c_str(),
                static_cast<double>(c.rawBytes) / events, static_cast<double>(c.compressedBytes) / events,
                size.fileBytes ? 100.0 * static_cast<double>(c.compressedBytes) / static_cast<double>(size.fileBytes)
                               : 0.0);
  return 0;
}
