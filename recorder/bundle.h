// Bundles: every file a trace's mappings name, packed on the device into one archive
// (like `perf archive`) so the workstation needs nothing else from the device. A bundle
// is a zstd-compressed ustar archive laid out as a debug directory: each file under
// `.build-id/xx/rest` (its GNU build-id), plus `heaptrail-bundle.txt` listing build-id,
// size and recorded path. `heaptrail analyze --bundle` reads it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace heaptrail::recorder {

struct BundleSummary {
  std::size_t files = 0;            // files packed
  uint64_t fileBytes = 0;           // their size
  uint64_t bundleBytes = 0;         // the compressed archive
  std::vector<std::string> skipped; // one line each: a file not packed, and why
};

// Packs the executable files the mappings of `trace` name (each build-id once) into
// `output` (created like a trace: 0600, never through a symbolic link). Files without a
// build-id, gone, or whose build-id changed since the recording are skipped and listed.
// Throws RecordError when the trace cannot be read or the bundle cannot be written.
BundleSummary writeBundle(const std::filesystem::path& trace, const std::filesystem::path& output);

// `heaptrail-record bundle TRACE [-o FILE]`.
int bundleMain(const std::vector<std::string>& args, const std::string& program);

}  // namespace heaptrail::recorder
