#include "analyzer/symbols/debuginfod_client.h"

#include <elfutils/debuginfod.h>

#include <cstdlib>
#include <cstring>

#include "common/hex.h"

namespace heaptrail::symbols {

void DebuginfodClient::SessionEnd::operator()(debuginfod_client* client) const { debuginfod_end(client); }

std::unique_ptr<DebuginfodClient> DebuginfodClient::fromEnvironment() {
  const char* urls = std::getenv(DEBUGINFOD_URLS_ENV_VAR);
  if (!urls || !*urls) return nullptr;
  debuginfod_client* client = debuginfod_begin();
  if (!client) return nullptr;
  return std::unique_ptr<DebuginfodClient>(new DebuginfodClient(client));
}

DebuginfodClient::~DebuginfodClient() = default;

std::optional<DebuginfodClient::Found> DebuginfodClient::find(Artifact what, std::string_view rawBuildId) {
  if (rawBuildId.empty()) return std::nullopt;
  auto key = std::make_pair(what, std::string(rawBuildId));
  if (missing_.count(key)) return std::nullopt;
  const auto* id = reinterpret_cast<const unsigned char*>(rawBuildId.data());
  const int length = static_cast<int>(rawBuildId.size());
  char* cached = nullptr;
  const int fd = what == Artifact::Executable ? debuginfod_find_executable(client_.get(), id, length, &cached)
                                              : debuginfod_find_debuginfo(client_.get(), id, length, &cached);
  if (fd < 0) {
    lastError_ = "debuginfod: no " + std::string(what == Artifact::Executable ? "executable" : "debug info") +
                 " for build-id " + common::hexBytes(rawBuildId) + " (" + std::strerror(-fd) + ")";
    missing_.insert(std::move(key));
    return std::nullopt;
  }
  Found found{common::UniqueFd(fd), cached ? std::filesystem::path(cached) : std::filesystem::path()};
  std::free(cached);
  ++found_;
  return found;
}

}  // namespace heaptrail::symbols
