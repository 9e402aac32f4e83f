#include "recorder/allocator_locator.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>

#include "recorder/elf_info.h"
#include "recorder/proc_maps.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

// The directories the dynamic loader searches, LD_LIBRARY_PATH first.
std::vector<std::filesystem::path> librarySearchPath() {
  std::vector<std::filesystem::path> dirs;
  if (const char* env = std::getenv("LD_LIBRARY_PATH")) {
    std::istringstream in(env);
    std::string dir;
    while (std::getline(in, dir, ':'))
      if (!dir.empty()) dirs.emplace_back(dir);
  }
  // The recorder's own libraries are where the loader finds them on this system.
  for (const auto& entry : readMaps(::getpid()))
    if (!entry.path.empty() && entry.path.front() == '/') {
      auto dir = std::filesystem::path(entry.path).parent_path();
      if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
    }
  for (const char* dir : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                          "/usr/lib/aarch64-linux-gnu", "/lib/arm-linux-gnueabihf", "/usr/lib/arm-linux-gnueabihf", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
                          "/usr/local/lib"})
    dirs.emplace_back(dir);
  return dirs;
}

std::filesystem::path findLibrary(const std::string& name, const std::vector<std::filesystem::path>& dirs) {
  if (name.find('/') != std::string::npos) return name;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (std::filesystem::exists(dir / name, ec)) return dir / name;
  }
  return {};
}

// "#!/bin/sh -e" -> "/bin/sh"
std::filesystem::path scriptInterpreter(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line) || !line.starts_with("#!")) return {};
  std::istringstream words(line.substr(2));
  std::string interpreter;
  words >> interpreter;
  return interpreter;
}

}  // namespace

bool isLibcName(const std::string& name) {
  return name.starts_with("libc.so") || (name.starts_with("libc-") && name.ends_with(".so")) ||
         name.starts_with("ld-musl-") || name.starts_with("libc.musl-");
}

AllocatorObjects locateAllocatorsInProcess(pid_t pid) {
  const std::string root = "/proc/" + std::to_string(pid) + "/root";
  std::vector<MapsEntry> maps;
  try {
    maps = readMaps(pid);
  } catch (const std::exception& e) {
    throw RecordError(e.what());
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec) throw RecordError("cannot inspect process " + std::to_string(pid) + ": " + ec.message());

  // Seen from the recorder, the target's files live under /proc/PID/root (they differ
  // when the target runs in a container).
  AllocatorObjects result;
  result.objects.push_back({root + exe.string(), exe.string()});
  std::set<std::string> seen = {exe.string()};
  for (const auto& entry : maps) {
    if (!entry.executable || entry.path.empty() || entry.path.front() != '/') continue;
    if (!seen.insert(entry.path).second) continue;
    AllocatorObject object{root + entry.path, entry.path};
    if (!result.libc && isLibcName(std::filesystem::path(entry.path).filename())) result.libc = object;
    result.objects.push_back(std::move(object));
  }
  return result;
}

AllocatorObjects locateAllocatorsForExecutable(const std::filesystem::path& executable) {
  AllocatorObjects result;
  std::filesystem::path program = executable;
  if (auto interpreter = scriptInterpreter(executable); !interpreter.empty()) program = interpreter;
  result.objects.push_back({program, program.string()});

  const auto dirs = librarySearchPath();
  std::set<std::string> seen;
  std::deque<std::filesystem::path> queue = {program};
  while (!queue.empty()) {
    const auto file = queue.front();
    queue.pop_front();
    const auto info = readElfInfo(file);
    if (!info) continue;
    std::vector<std::string> wanted = info->needed;
    // musl's dynamic loader is its libc.
    if (info->interpreter.find("ld-musl") != std::string::npos) wanted.push_back(info->interpreter);
    std::vector<std::filesystem::path> searched;
    for (std::string dir : info->runpath) {
      if (const auto origin = dir.find("$ORIGIN"); origin != std::string::npos)
        dir.replace(origin, 7, file.parent_path().string());
      searched.emplace_back(dir);
    }
    searched.insert(searched.end(), dirs.begin(), dirs.end());
    for (const auto& name : wanted) {
      const auto path = findLibrary(name, searched);
      if (path.empty() || !seen.insert(path.string()).second) continue;
      AllocatorObject object{path, path.string()};
      if (!result.libc && isLibcName(path.filename())) result.libc = object;
      result.objects.push_back(object);
      queue.push_back(path);
    }
  }
  return result;
}

AllocatorObjects namedAllocator(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw RecordError("--obj " + path.string() + ": no such file");
  AllocatorObjects allocators;
  const AllocatorObject object{path, path.string()};
  allocators.objects.push_back(object);
  if (isLibcName(path.filename())) allocators.libc = object;
  return allocators;
}

}  // namespace heaptrail::recorder
