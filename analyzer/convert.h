// Rewrites a trace (any version this heaptrail reads) in the current version: the
// version-1 fixtures' round trip through version 2 (tests), and what each encoding idea
// earns on real traces (tools/bench/recode).
#pragma once

#include <filesystem>

#include "schema/event_codec.h"
#include "schema/trace_writer.h"

namespace heaptrail::analyzer {

struct ConversionResult {
  uint64_t chunks = 0;
  uint64_t events = 0;
  uint64_t bytesWritten = 0;
};

// Reads `from` to its end and writes `to` (replaced) with the same header, chunks (one
// per chunk read) and footer. Damaged chunks are left out. Throws TraceError.
ConversionResult convertTrace(const std::filesystem::path& from, const std::filesystem::path& to,
                              const schema::EncodingOptions& encoding, int compressionLevel = schema::TraceWriter::kDefaultCompressionLevel,
                              unsigned chunksPerChunk = 1);

}  // namespace heaptrail::analyzer
