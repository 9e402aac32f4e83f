// Binaries and separate debug files fetched by build-id from debuginfod servers: the
// ones listed in $DEBUGINFOD_URLS, through elfutils' libdebuginfod and its cache
// ($DEBUGINFOD_CACHE_PATH, by default ~/.cache/debuginfod_client). Used only when a file
// is not found locally; a build-id a server does not have is asked once per run.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "common/unique_fd.h"

struct debuginfod_client;

namespace heaptrail::symbols {

class DebuginfodClient {
 public:
  enum class Artifact { Executable, DebugInfo };
  struct Found {
    common::UniqueFd fd;
    std::filesystem::path path;  // the file in the client's cache
  };

  // nullptr when $DEBUGINFOD_URLS is unset or empty (no server to ask) or the library
  // cannot start a session; `error` then says why when it is worth telling (libdebuginfod
  // is loaded only here, so that runs without servers do not pay for libcurl).
  static std::unique_ptr<DebuginfodClient> fromEnvironment(std::string* error = nullptr);
  ~DebuginfodClient();
  DebuginfodClient(const DebuginfodClient&) = delete;
  DebuginfodClient& operator=(const DebuginfodClient&) = delete;

  // The file with this raw build-id, nullopt when no server has it (see lastError()).
  std::optional<Found> find(Artifact what, std::string_view rawBuildId);

  std::size_t filesFound() const { return found_; }
  const std::string& lastError() const { return lastError_; }

 private:
  struct SessionEnd {
    void operator()(debuginfod_client* client) const;
  };
  explicit DebuginfodClient(debuginfod_client* client) : client_(client) {}

  std::unique_ptr<debuginfod_client, SessionEnd> client_;
  std::set<std::pair<Artifact, std::string>> missing_;
  std::size_t found_ = 0;
  std::string lastError_;
};

}  // namespace heaptrail::symbols
