#include "recorder/allocator_locator.h"

#include <unistd.h>

#include <array>

#include "recorder/elf_info.h"
#include "recorder/proc_maps.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

bool isLibcName(const std::string& name) {
  return name.starts_with("libc.so") || (name.starts_with("libc-") && name.ends_with(".so")) ||
         name.starts_with("ld-musl-") || name.starts_with("libc.musl-");
}

// The libc this recorder runs on: the fallback for targets we cannot inspect.
std::filesystem::path ownLibc() {
  for (const auto& entry : readMaps(::getpid()))
    if (!entry.path.empty() && isLibcName(std::filesystem::path(entry.path).filename()))
      return entry.path;
  return {};
}

std::filesystem::path findLibrary(const std::string& name) {
  // The recorder's own libc is the one the target's loader will pick on this system.
  if (auto own = ownLibc(); !own.empty() && own.filename() == name) return own;
  static constexpr std::array dirs = {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                      "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                      "/lib64", "/usr/lib64", "/lib", "/usr/lib"};
  for (const char* dir : dirs) {
    std::filesystem::path candidate = std::filesystem::path(dir) / name;
    std::error_code ec;
    if (std::filesystem::exists(candidate, ec)) return candidate;
  }
  return {};
}

}  // namespace

AllocatorObject locateAllocatorInProcess(pid_t pid) {
  const std::string root = "/proc/" + std::to_string(pid) + "/root";
  std::vector<MapsEntry> maps;
  try {
    maps = readMaps(pid);
  } catch (const std::exception& e) {
    throw RecordError(e.what());
  }
  // Seen from the recorder, the target's files live under /proc/PID/root (they differ
  // when the target runs in a container).
  const auto attachable = [&](const std::string& path) { return std::filesystem::path(root + path); };

  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (!ec) {
    if (auto info = readElfInfo(attachable(exe)); info && info->definesMalloc)
      return {attachable(exe), exe.string(), false};
  }
  for (const auto& entry : maps) {
    if (!entry.executable || entry.path.empty() || entry.path.front() != '/') continue;
    if (isLibcName(std::filesystem::path(entry.path).filename()))
      return {attachable(entry.path), entry.path};
  }
  throw RecordError("no allocator found in process " + std::to_string(pid) +
                    ": it maps no libc and its executable defines no malloc; name one with --obj");
}

AllocatorObject locateAllocatorForExecutable(const std::filesystem::path& executable) {
  const auto info = readElfInfo(executable);
  if (info) {
    if (info->definesMalloc) return {executable, executable.string(), false};
    if (info->interpreter.find("ld-musl") != std::string::npos)
      return {info->interpreter, info->interpreter};
    for (const auto& needed : info->needed) {
      if (!isLibcName(needed)) continue;
      if (auto path = findLibrary(needed); !path.empty()) return {path, path.string()};
    }
    if (info->interpreter.empty())
      throw RecordError(executable.string() +
                        " is statically linked without a malloc symbol; name the allocator with --obj");
  }
  if (auto own = ownLibc(); !own.empty()) return {own, own.string()};
  throw RecordError("cannot find the allocator used by " + executable.string() + "; name it with --obj");
}

}  // namespace heaptrail::recorder
