// bench-site-cost: what one uprobe hit costs at a given instruction, on this kernel.
//
//   bench-site-cost [--iterations N] [--rounds R] < SITES
//
// SITES: one site per line, "LABEL PROBE SYMBOL OFFSET", PROBE one of uprobe,
// uretprobe, both (an entry and a return probe on the same instruction). SYMBOL is
// looked up with dlsym in this process: the instruction zoo linked into this binary
// (zoo_push_rbp, ...: see insn_zoo.S) or a function of glibc / libstdc++ (malloc,
// _Znwm, ...). OFFSET is in bytes from the symbol (decimal or 0x hex).
//
// Each site is measured in this process: an empty BPF program is attached at
// SYMBOL+OFFSET for this pid only, the workload of SYMBOL runs N times, the program is
// detached. A workload is one call pair (allocate with SYMBOL and release, or allocate
// and release with SYMBOL; a zoo function is one call). The same workloads also run with
// no probe, interleaved with the probed runs in every round, so a hit's cost is
//   (median time with the probe - median time without) / N
// and sites compare as ratios within one run. Output: one line per site,
//   LABEL PROBE SYMBOL OFFSET per_hit_ns_median per_hit_ns_min per_hit_ns_max
// or "LABEL PROBE SYMBOL OFFSET refused" when the kernel cannot probe the instruction.
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "floor.skel.h"

extern "C" {
void zoo_push_rbp();
}

namespace {

struct Site {
  std::string label, probe, symbol;
  uint64_t offset = 0;
  std::vector<double> perHit;
  bool refused = false;  // the kernel does not probe this instruction
};

uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

template <typename F>
F sym(const char* name) {
  void* p = dlsym(RTLD_DEFAULT, name);
  if (!p) {
    std::fprintf(stderr, "bench-site-cost: no symbol %s\n", name);
    std::exit(1);
  }
  return reinterpret_cast<F>(p);
}

// One call pair per iteration, through pointers from dlsym so that the compiler can
// neither inline nor elide the allocator calls.
std::function<void()> workloadFor(const std::string& s) {
  using Alloc = void* (*)(size_t);
  using Free = void (*)(void*);
  static const std::nothrow_t& nothrow = std::nothrow;
  static auto cMalloc = sym<Alloc>("malloc");
  static auto cFree = sym<Free>("free");
  constexpr size_t kSize = 40, kAlign = 64;
  if (s.starts_with("zoo_")) {
    auto f = sym<void (*)()>(s.c_str());
    return [f] { f(); };
  }
  if (s == "malloc" || s == "free") return [] { cFree(cMalloc(kSize)); };
  if (s == "calloc") {
    auto f = sym<void* (*)(size_t, size_t)>("calloc");
    return [f] { cFree(f(2, kSize / 2)); };
  }
  if (s == "realloc") {
    auto f = sym<void* (*)(void*, size_t)>("realloc");
    return [f] { cFree(f(nullptr, kSize)); };
  }
  if (s == "reallocarray") {
    auto f = sym<void* (*)(void*, size_t, size_t)>("reallocarray");
    return [f] { cFree(f(nullptr, 2, kSize / 2)); };
  }
  if (s == "posix_memalign") {
    auto f = sym<int (*)(void**, size_t, size_t)>("posix_memalign");
    return [f] {
      void* p = nullptr;
      if (f(&p, kAlign, kSize) == 0) cFree(p);
    };
  }
  if (s == "memalign" || s == "aligned_alloc") {
    auto f = sym<void* (*)(size_t, size_t)>(s.c_str());
    return [f] { cFree(f(kAlign, kSize)); };
  }
  if (s == "valloc" || s == "pvalloc") {
    auto f = sym<Alloc>(s.c_str());
    return [f] { cFree(f(kSize)); };
  }
  if (s == "mmap" || s == "munmap") {
    auto m = sym<void* (*)(void*, size_t, int, int, int, long)>("mmap");
    auto u = sym<int (*)(void*, size_t)>("munmap");
    return [m, u] { u(m(nullptr, 4096, 3 /*rw*/, 0x22 /*private|anon*/, -1, 0), 4096); };
  }
  // C++ operators: new/new[] with every variant's matching delete, and every delete
  // variant after the matching new.
  const bool array = s.starts_with("_Zna") || s.starts_with("_Zda");
  const std::string n = array ? "_Zna" : "_Znw", d = array ? "_Zda" : "_Zdl";
  auto plainNew = sym<Alloc>((n + "m").c_str());
  auto plainDelete = sym<Free>((d + "Pv").c_str());
  auto alignedNew = sym<void* (*)(size_t, size_t)>((n + "mSt11align_val_t").c_str());
  auto alignedDelete = sym<void (*)(void*, size_t)>((d + "PvSt11align_val_t").c_str());
  const std::string v = s.substr(4);
  if (v == "m" || v == "Pv") return [=] { plainDelete(plainNew(kSize)); };
  if (v == "mRKSt9nothrow_t") {
    auto f = sym<void* (*)(size_t, const std::nothrow_t&)>(s.c_str());
    return [=] { plainDelete(f(kSize, nothrow)); };
  }
  if (v == "mSt11align_val_t" || v == "PvSt11align_val_t") return [=] { alignedDelete(alignedNew(kSize, kAlign), kAlign); };
  if (v == "mSt11align_val_tRKSt9nothrow_t") {
    auto f = sym<void* (*)(size_t, size_t, const std::nothrow_t&)>(s.c_str());
    return [=] { alignedDelete(f(kSize, kAlign, nothrow), kAlign); };
  }
  if (v == "Pvm") {
    auto f = sym<void (*)(void*, size_t)>(s.c_str());
    return [=] { f(plainNew(kSize), kSize); };
  }
  if (v == "PvRKSt9nothrow_t") {
    auto f = sym<void (*)(void*, const std::nothrow_t&)>(s.c_str());
    return [=] { f(plainNew(kSize), nothrow); };
  }
  if (v == "PvmSt11align_val_t") {
    auto f = sym<void (*)(void*, size_t, size_t)>(s.c_str());
    return [=] { f(alignedNew(kSize, kAlign), kSize, kAlign); };
  }
  if (v == "PvSt11align_val_tRKSt9nothrow_t") {
    auto f = sym<void (*)(void*, size_t, const std::nothrow_t&)>(s.c_str());
    return [=] { f(alignedNew(kSize, kAlign), kAlign, nothrow); };
  }
  std::fprintf(stderr, "bench-site-cost: no workload for %s\n", s.c_str());
  std::exit(1);
}

// The mapped file and file offset of an address of this process.
bool fileOffsetOf(uint64_t address, std::string& path, uint64_t& offset) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uint64_t start = 0, end = 0, pgoff = 0;
    char perms[8] = {}, file[4096] = {};
    if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %*s %*s %4095s", &start, &end, perms,
                    &pgoff, file) < 5)
      continue;
    if (address < start || address >= end || perms[2] != 'x') continue;
    path = file;
    offset = address - start + pgoff;
    return true;
  }
  return false;
}

int quietPrint(enum libbpf_print_level level, const char* format, va_list args) {
  return level == LIBBPF_WARN ? std::vfprintf(stderr, format, args) : 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 10000, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc)
      iterations = std::atol(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc)
      rounds = std::atol(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench-site-cost [--iterations N] [--rounds R] < SITES\n");
      return 2;
    }
  }
  std::vector<Site> sites;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    Site s;
    std::string offset;
    if (line.empty() || line[0] == '#' || !(in >> s.label >> s.probe >> s.symbol >> offset)) continue;
    s.offset = std::stoull(offset, nullptr, 0);
    sites.push_back(std::move(s));
  }
  libbpf_set_print(quietPrint);
  floor_bpf* skel = floor_bpf__open_and_load();
  if (!skel) {
    std::fprintf(stderr, "bench-site-cost: cannot load the BPF programs: %s\n", std::strerror(errno));
    return 1;
  }
  (void)&zoo_push_rbp;  // the zoo is linked in

  std::map<std::string, std::function<void()>> workloads;
  for (const auto& s : sites) workloads.try_emplace(s.symbol, workloadFor(s.symbol));
  const auto timeWorkload = [&](const std::function<void()>& w) {
    for (int i = 0; i < 200; ++i) w();  // warm up: caches, the uprobe's out-of-line slot
    const uint64_t t0 = nowNs();
    for (long i = 0; i < iterations; ++i) w();
    return double(nowNs() - t0);
  };

  for (long round = 0; round < rounds; ++round) {
    std::map<std::string, double> bare;
    for (auto& [symbol, w] : workloads) bare[symbol] = timeWorkload(w);
    for (size_t k = 0; k < sites.size(); ++k) {
      Site& s = sites[(k + size_t(round)) % sites.size()];
      std::string path;
      uint64_t offset = 0;
      const uint64_t address = reinterpret_cast<uint64_t>(dlsym(RTLD_DEFAULT, s.symbol.c_str())) + s.offset;
      if (!fileOffsetOf(address, path, offset)) {
        std::fprintf(stderr, "bench-site-cost: %s+%" PRIu64 " is not in an executable mapping\n", s.symbol.c_str(),
                     s.offset);
        return 1;
      }
      std::vector<bpf_link*> links;
      for (bool ret : {false, true}) {
        if ((ret && s.probe == "uprobe") || (!ret && s.probe == "uretprobe")) continue;
        LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret);
        bpf_link* link = bpf_program__attach_uprobe_opts(ret ? skel->progs.floor_return : skel->progs.floor_entry,
                                                         getpid(), path.c_str(), offset, &opts);
        if (!link) {
          if (round == 0)
            std::fprintf(stderr, "bench-site-cost: the kernel refuses %s (%s+0x%" PRIx64 "): %s\n", s.label.c_str(),
                         path.c_str(), offset, std::strerror(errno));
          s.refused = true;
          break;
        }
        links.push_back(link);
      }
      if (s.refused) {
        for (auto* l : links) bpf_link__destroy(l);
        continue;
      }
      const double t = timeWorkload(workloads[s.symbol]);
      for (auto* l : links) bpf_link__destroy(l);
      // Bare time of the same workload, measured again right after: the closer pair.
      const double b = std::min(bare[s.symbol], timeWorkload(workloads[s.symbol]));
      s.perHit.push_back((t - b) / double(iterations));
    }
    std::fprintf(stderr, "bench-site-cost: round %ld/%ld done\n", round + 1, rounds);
  }
  for (const auto& s : sites) {
    if (s.refused) {
      std::printf("%s %s %s %" PRIu64 " refused\n", s.label.c_str(), s.probe.c_str(), s.symbol.c_str(), s.offset);
      continue;
    }
    const auto [lo, hi] = std::minmax_element(s.perHit.begin(), s.perHit.end());
    std::printf("%s %s %s %" PRIu64 " %.0f %.0f %.0f\n", s.label.c_str(), s.probe.c_str(), s.symbol.c_str(), s.offset,
                median(s.perHit), *lo, *hi);
  }
  floor_bpf__destroy(skel);
  return 0;
}
