// A real debuginfod server (elfutils' `debuginfod`, Debian package `debuginfod`) on
// localhost, serving the ELF/DWARF files of one directory, for the symbolizer's tests.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

namespace heaptrail::testing {

class DebuginfodServer {
 public:
  // Starts the server on a free port with its database in `work`, and waits until it has
  // indexed `files` files of `served` (polling its /metrics; no sleep handshake).
  DebuginfodServer(const std::filesystem::path& served, const std::filesystem::path& work, unsigned files);
  ~DebuginfodServer();
  DebuginfodServer(const DebuginfodServer&) = delete;
  DebuginfodServer& operator=(const DebuginfodServer&) = delete;

  // Empty error: the server answers at url().
  const std::string& error() const { return error_; }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  std::string url_;
  std::string error_;
};

// Sets an environment variable for the lifetime of the object, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> previous_;
};

}  // namespace heaptrail::testing
