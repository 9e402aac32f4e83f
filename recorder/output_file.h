// Where the recorder writes its trace, created so that nobody else can steer it: the
// recorder runs as root in directories other users may write to (the default output is
// heaptrail-<pid>.htr in the current directory).
//
// - A symbolic link at the path is refused (O_NOFOLLOW), never written through.
// - A new file is created exclusively (O_EXCL) with mode 0600: a trace holds command
//   lines and host names.
// - An existing regular file is never written into: the trace goes to a new 0600 file
//   beside it, which replaces it (rename) only once the recording has started. A start
//   that fails leaves the old file as it was, and removes only what it created.
// - The file is locked (flock) for the recorder's lifetime: a second recorder on the
//   same path is refused ("another heaptrail recorder is writing it").
// - "-" (or /dev/stdout) streams to standard output, which must not be a terminal; an
//   existing FIFO is streamed to as well, and is never waited on: with no reader it
//   is an error, not a hang.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "common/unique_fd.h"

namespace heaptrail::recorder {

class OutputFile {
 public:
  // Throws RecordError with a message naming the path.
  static OutputFile open(const std::filesystem::path& path);

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  // An output never committed is abandoned.
  ~OutputFile();

  // The path as the user named it, for messages.
  const std::filesystem::path& path() const { return path_; }
  // A new descriptor of where the trace goes (the lock stays with this object).
  common::UniqueFd writeFd() const;
  // True for standard output.
  bool isStdout() const { return kind_ == Kind::Stdout; }

  // The recording has started: from now on the path holds the new trace. Throws
  // RecordError if the new file cannot take the old one's place.
  void commit();
  // The recording never started: remove what this object created, and nothing else.
  void abandon();

 private:
  enum class Kind { Stdout, Stream, NewFile, Replacement };
  OutputFile() = default;

  std::filesystem::path path_;
  Kind kind_ = Kind::Stream;
  common::UniqueFd fd_;        // what the trace is written to
  common::UniqueFd dir_;       // NewFile, Replacement: the directory holding the path
  common::UniqueFd existing_;  // Replacement: the file being replaced, locked
  std::string name_;           // the path's last component
  std::string tempName_;       // Replacement: the new file's name until commit()
  bool done_ = false;          // committed or abandoned
};

}  // namespace heaptrail::recorder
