// A bundle (`heaptrail-record bundle`: a zstd-compressed tar of the device's files by
// build-id) unpacked into a private directory that serves as a debug directory
// (`.build-id/xx/rest`), removed with everything in it when the object goes away.
//
// A bundle is input from a stranger like a trace: only regular members named
// `.build-id/<2 hex>/<hex>` are unpacked, into new files of a fresh 0700 directory
// (never through a link, never over another file); anything else is skipped with a
// note; at most kMaxBytes are unpacked in all.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace heaptrail::symbols {

class UnpackedBundle {
 public:
  static constexpr uint64_t kMaxBytes = uint64_t{16} << 30;

  // Throws std::runtime_error naming the bundle when it cannot be read at all; a bundle
  // cut off or damaged part way keeps the members before the damage (with a note).
  explicit UnpackedBundle(const std::filesystem::path& bundle);
  ~UnpackedBundle();
  UnpackedBundle(const UnpackedBundle&) = delete;
  UnpackedBundle& operator=(const UnpackedBundle&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  std::size_t files() const { return files_; }
  // Members skipped or damage found, one line each.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  std::filesystem::path dir_;
  std::size_t files_ = 0;
  std::vector<std::string> notes_;
};

}  // namespace heaptrail::symbols
