#include "recorder/allocator_locator.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>

#include "common/safe_open.h"
#include "common/safe_text.h"
#include "recorder/elf_info.h"
#include "recorder/mapped_file.h"
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

// The name the kernel will give the library's mappings: the file its symlinks lead to
// (libtcmalloc_minimal.so.4 -> libtcmalloc_minimal.so.4.5.9), so that the functions
// hooked in it and the frames in it name one object.
std::string mappedName(const std::filesystem::path& path) {
  std::error_code ec;
  const auto file = std::filesystem::canonical(path, ec);
  return ec ? path.string() : file.string();
}

std::vector<std::string> splitPreloadList(const std::string& text) {
  std::vector<std::string> names;
  std::string name;
  for (char c : text) {
    if (c == ' ' || c == ':' || c == '\t' || c == '\n') {
      if (!name.empty()) names.push_back(std::move(name));
      name.clear();
    } else {
      name += c;
    }
  }
  if (!name.empty()) names.push_back(std::move(name));
  return names;
}

}  // namespace

std::vector<std::string> preloadedLibraries(const std::string& ldPreload) {
  auto names = splitPreloadList(ldPreload);
  std::ifstream in("/etc/ld.so.preload");
  std::stringstream text;
  text << in.rdbuf();
  for (auto& name : splitPreloadList(text.str())) names.push_back(std::move(name));
  return names;
}

bool isAllocatorLibraryName(const std::string& name) {
  for (const char* prefix : {"libjemalloc.so", "libtcmalloc", "libmimalloc.so", "libmimalloc-", "libtbbmalloc.so",
                             "libhoard.so", "libsnmalloc"})
    if (name.starts_with(prefix)) return true;
  return false;
}

bool isLibcName(const std::string& name) {
  return name.starts_with("libc.so") || (name.starts_with("libc-") && name.ends_with(".so")) ||
         name.starts_with("ld-musl-") || name.starts_with("libc.musl-");
}

AllocatorObjects locateAllocatorsInProcess(pid_t pid) {
  std::vector<MapsEntry> maps;
  try {
    maps = readMaps(pid);
  } catch (const std::exception& e) {
    throw RecordError(e.what());
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec) throw RecordError("cannot inspect process " + std::to_string(pid) + ": " + ec.message());

  // The files are opened as the process mapped them, never by a path it could have
  // replaced since (they also differ from ours when it runs in a container).
  AllocatorObjects result;
  if (auto fd = openExecutableOf(pid)) {
    result.objects.emplace_back(std::move(fd), exe.string());
    result.objects.back().program = true;
  }
  std::set<std::string> seen = {exe.string()};
  for (const auto& entry : maps) {
    if (!entry.executable || entry.path.empty() || entry.path.front() != '/') continue;
    if (!seen.insert(entry.path).second) continue;
    auto fd = openMappedFile({pid, entry.start, entry.end, entry.path, entry.device, entry.inode, {}});
    if (!fd) continue;
    AllocatorObject object(std::move(fd), entry.path);
    if (!result.libc && isLibcName(std::filesystem::path(entry.path).filename())) result.libc = object;
    result.objects.push_back(std::move(object));
  }
  return result;
}

AllocatorObjects locateAllocatorsForExecutable(const std::filesystem::path& program, const std::string& preload) {
  AllocatorObjects result;
  const auto dirs = librarySearchPath();
  std::set<std::string> seen;
  std::deque<std::pair<std::filesystem::path, size_t>> queue;  // file, index in result.objects
  if (auto fd = common::openRegular(program)) {
    result.objects.emplace_back(std::move(fd), program.string());
    result.objects.back().program = true;
    queue.emplace_back(program, 0);
  }
  // Preloaded libraries come right after the executable in every symbol lookup: their
  // malloc is the one the program's calls bind to. A static program loads nothing.
  const auto programInfo = result.objects.empty() ? std::nullopt : readElfInfo(result.objects.front().fd());
  if (programInfo && !programInfo->interpreter.empty())
    for (const auto& name : preloadedLibraries(preload)) {
      const auto path = findLibrary(name, dirs);
      if (path.empty() || !seen.insert(path.string()).second) continue;
      auto fd = common::openRegular(path);
      if (!fd) continue;
      result.objects.emplace_back(std::move(fd), mappedName(path));
      queue.emplace_back(path, result.objects.size() - 1);
    }
  while (!queue.empty()) {
    const auto [file, index] = queue.front();
    queue.pop_front();
    const auto info = readElfInfo(result.objects[index].fd());
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
      auto fd = common::openRegular(path);
      if (!fd) continue;
      AllocatorObject object(std::move(fd), mappedName(path));
      if (!result.libc && isLibcName(path.filename())) result.libc = object;
      result.objects.push_back(object);
      queue.emplace_back(path, result.objects.size() - 1);
    }
  }
  return result;
}

AllocatorObjects namedAllocator(const std::filesystem::path& path) {
  auto fd = common::openRegular(path);
  if (!fd) {
    const int err = errno;
    throw RecordError("--obj " + common::printable(path.string()) + ": " +
                      (err == ENOENT ? "no such file" : common::openErrorText(err)));
  }
  AllocatorObjects allocators;
  const AllocatorObject object(std::move(fd), path.string());
  allocators.objects.push_back(object);
  if (isLibcName(path.filename())) allocators.libc = object;
  return allocators;
}

}  // namespace heaptrail::recorder
