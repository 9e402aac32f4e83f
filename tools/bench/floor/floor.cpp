// bench-floor: attaches empty BPF programs at a given list of uprobe / uretprobe sites
// (file + offset: those heaptrail-record attached, as `bpftool perf show` lists them),
// starts a command with the probes limited to it, and waits for it.
//
//   bench-floor --probes FILE [--all-processes] [--parts] -- CMD [ARGS...]
//
// --parts: instead of the empty programs, attach the building blocks of heaptrail's
// programs, one program each (hash insert at entry; hash delete, user stack capture and
// ring buffer output at return), so that BPF statistics time each one. Not for timing.
//
// FILE: one site per line, "uprobe PATH OFFSET" or "uretprobe PATH OFFSET" (OFFSET
// decimal or 0x hex). Exit status: the command's (128+signal if killed), 1 on error.
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "floor.skel.h"

namespace {

struct Site {
  bool ret = false;
  std::string path;
  unsigned long long offset = 0;
};

int usage() {
  std::fprintf(stderr, "usage: bench-floor --probes FILE [--all-processes] -- CMD [ARGS...]\n");
  return 2;
}

bool readSites(const char* file, std::vector<Site>& sites) {
  std::ifstream in(file);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string type, path, offset;
    if (!(fields >> type >> path >> offset) || type[0] == '#') continue;
    if (type != "uprobe" && type != "uretprobe") return false;
    sites.push_back({type == "uretprobe", path, std::stoull(offset, nullptr, 0)});
  }
  return !sites.empty();
}

int silentPrint(enum libbpf_print_level level, const char* format, va_list args) {
  return level == LIBBPF_WARN ? std::vfprintf(stderr, format, args) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* probesFile = nullptr;
  bool allProcesses = false;
  bool parts = false;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--probes" && i + 1 < argc) {
      probesFile = argv[++i];
    } else if (a == "--all-processes") {
      allProcesses = true;
    } else if (a == "--parts") {
      parts = true;
    } else if (a == "--") {
      ++i;
      break;
    } else {
      return usage();
    }
  }
  if (!probesFile || i >= argc) return usage();
  std::vector<Site> sites;
  if (!readSites(probesFile, sites)) {
    std::fprintf(stderr, "bench-floor: no usable probe list in %s\n", probesFile);
    return 1;
  }
  libbpf_set_print(silentPrint);

  floor_bpf* skel = floor_bpf__open_and_load();
  if (!skel) {
    std::fprintf(stderr, "bench-floor: cannot load the BPF programs: %s\n", std::strerror(errno));
    return 1;
  }

  // The child waits for the probes before it execs, like heaptrail-record's `--`.
  int release[2];
  if (pipe2(release, O_CLOEXEC) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    close(release[1]);
    char go = 0;
    if (read(release[0], &go, 1) != 1) _exit(127);
    execvp(argv[i], argv + i);
    std::fprintf(stderr, "bench-floor: cannot run %s: %s\n", argv[i], std::strerror(errno));
    _exit(127);
  }
  close(release[0]);

  std::vector<bpf_link*> links;
  bool failed = false;
  for (const Site& s : sites) {
    std::vector<bpf_program*> programs;
    if (!parts)
      programs = {s.ret ? skel->progs.floor_return : skel->progs.floor_entry};
    else if (s.ret)
      programs = {skel->progs.part_hash_return, skel->progs.part_stack, skel->progs.part_ringbuf};
    else
      programs = {skel->progs.part_hash_entry};
    for (bpf_program* program : programs) {
      LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = s.ret);
      bpf_link* link = bpf_program__attach_uprobe_opts(program, allProcesses ? -1 : child, s.path.c_str(),
                                                       static_cast<size_t>(s.offset), &opts);
      if (!link) {
        std::fprintf(stderr, "bench-floor: cannot attach %s %s+0x%llx: %s\n", s.ret ? "uretprobe" : "uprobe",
                     s.path.c_str(), s.offset, std::strerror(errno));
        failed = true;
        break;
      }
      links.push_back(link);
    }
    if (failed) break;
  }
  if (failed) {
    close(release[1]);  // the child exits without running the command
    waitpid(child, nullptr, 0);
    for (auto* l : links) bpf_link__destroy(l);
    floor_bpf__destroy(skel);
    return 1;
  }
  std::fprintf(stderr, "bench-floor: %zu probes attached\n", links.size());
  const char go = 1;
  (void)!write(release[1], &go, 1);
  close(release[1]);

  // Drain the parts' ring buffer (empty otherwise) until the command exits.
  ring_buffer* ring = ring_buffer__new(bpf_map__fd(skel->maps.part_ring),
                                       [](void*, void*, size_t) { return 0; }, nullptr, nullptr);
  int status = 0;
  while (true) {
    const pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child || (r < 0 && errno != EINTR)) break;
    if (ring)
      ring_buffer__poll(ring, 50);
    else
      usleep(50000);
  }
  if (ring) ring_buffer__free(ring);
  for (auto* l : links) bpf_link__destroy(l);
  floor_bpf__destroy(skel);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
