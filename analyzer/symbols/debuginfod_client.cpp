#include "analyzer/symbols/debuginfod_client.h"

#include <dlfcn.h>
#include <elfutils/debuginfod.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/hex.h"

namespace heaptrail::symbols {
namespace {

// libdebuginfod is opened only when a server is configured: linked directly, it brings
// libcurl and ~25 more libraries whose loading and relocation cost every run of heaptrail
// (~8 ms, more than a small trace's replay), servers or not.
struct Library {
  decltype(&debuginfod_begin) begin = nullptr;
  decltype(&debuginfod_end) end = nullptr;
  decltype(&debuginfod_find_executable) findExecutable = nullptr;
  decltype(&debuginfod_find_debuginfo) findDebuginfo = nullptr;
  std::string error;

  static const Library& get() {
    static const Library library = open();
    return library;
  }

 private:
  static Library open() {
    Library l;
    // Never closed: the library's state (curl's) lives until exit.
    void* handle = ::dlopen("libdebuginfod.so.1", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      l.error = std::string("debuginfod: cannot load libdebuginfod.so.1 (") + (why ? why : "unknown error") +
                "): install libdebuginfod1 to fetch files from $DEBUGINFOD_URLS";
      return l;
    }
    l.begin = reinterpret_cast<decltype(l.begin)>(::dlsym(handle, "debuginfod_begin"));
    l.end = reinterpret_cast<decltype(l.end)>(::dlsym(handle, "debuginfod_end"));
    l.findExecutable = reinterpret_cast<decltype(l.findExecutable)>(::dlsym(handle, "debuginfod_find_executable"));
    l.findDebuginfo = reinterpret_cast<decltype(l.findDebuginfo)>(::dlsym(handle, "debuginfod_find_debuginfo"));
    if (!l.begin || !l.end || !l.findExecutable || !l.findDebuginfo) {
      l = Library{};
      l.error = "debuginfod: libdebuginfod.so.1 lacks the debuginfod_* functions";
    }
    return l;
  }
};

}  // namespace

void DebuginfodClient::SessionEnd::operator()(debuginfod_client* client) const { Library::get().end(client); }

std::unique_ptr<DebuginfodClient> DebuginfodClient::fromEnvironment(std::string* error) {
  const char* urls = std::getenv(DEBUGINFOD_URLS_ENV_VAR);
  if (!urls || !*urls) return nullptr;
  const Library& library = Library::get();
  if (!library.begin) {
    if (error) *error = library.error;
    return nullptr;
  }
  debuginfod_client* client = library.begin();
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
  const Library& library = Library::get();
  const int fd = what == Artifact::Executable ? library.findExecutable(client_.get(), id, length, &cached)
                                              : library.findDebuginfo(client_.get(), id, length, &cached);
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
