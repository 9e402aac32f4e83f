#include "recorder/allocator_probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>

#include "heaptrail.skel.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

bool gVerbose = false;
std::string gWarnings;

int libbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (gVerbose) return std::vfprintf(stderr, format, args);
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  gWarnings += line;
  if (gWarnings.size() > 4096) gWarnings.erase(0, gWarnings.size() - 4096);
  return 0;
}

struct ProbeSpec {
  const char* function;
  bpf_program* (*entry)(heaptrail_bpf*);
  bool hasReturn;
};

// The functions we hook, in the order they are attached.
const ProbeSpec kProbes[] = {
    {"malloc", [](heaptrail_bpf* s) { return s->progs.malloc_enter; }, true},
    {"free", [](heaptrail_bpf* s) { return s->progs.free_enter; }, false},
    {"calloc", [](heaptrail_bpf* s) { return s->progs.calloc_enter; }, true},
    {"realloc", [](heaptrail_bpf* s) { return s->progs.realloc_enter; }, true},
    {"reallocarray", [](heaptrail_bpf* s) { return s->progs.reallocarray_enter; }, true},
    {"posix_memalign", [](heaptrail_bpf* s) { return s->progs.posix_memalign_enter; }, true},
    {"aligned_alloc", [](heaptrail_bpf* s) { return s->progs.aligned_alloc_enter; }, true},
    {"memalign", [](heaptrail_bpf* s) { return s->progs.memalign_enter; }, true},
    {"valloc", [](heaptrail_bpf* s) { return s->progs.valloc_enter; }, true},
    {"pvalloc", [](heaptrail_bpf* s) { return s->progs.pvalloc_enter; }, true},
    {"mmap", [](heaptrail_bpf* s) { return s->progs.mmap_enter; }, true},
    {"munmap", [](heaptrail_bpf* s) { return s->progs.munmap_enter; }, false},
};

}  // namespace

void configureLibbpfLogging(bool verbose) {
  gVerbose = verbose;
  libbpf_set_print(libbpfPrint);
}

std::string lastLibbpfWarnings() { return gWarnings; }

void AllocatorProbes::SkeletonDeleter::operator()(heaptrail_bpf* skel) const {
  heaptrail_bpf__destroy(skel);
}

void AllocatorProbes::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

AllocatorProbes::AllocatorProbes(const ProbeConfig& config) {
  skel_.reset(heaptrail_bpf__open());
  if (!skel_) throw RecordError(std::string("cannot open the BPF programs: ") + std::strerror(errno));
  skel_->rodata->min_size = config.minSize;
  skel_->rodata->max_size = config.maxSize;
  skel_->rodata->stack_depth = config.stackDepth;
  skel_->rodata->wakeup_bytes = config.ringBufferBytes / 4;
  if (bpf_map__set_max_entries(skel_->maps.events, static_cast<uint32_t>(config.ringBufferBytes)) != 0)
    throw RecordError("invalid ring buffer size");
  if (const int err = heaptrail_bpf__load(skel_.get()); err != 0) {
    std::string detail = lastLibbpfWarnings();
    if (auto pos = detail.find('\n'); pos != std::string::npos) detail.resize(pos);
    throw RecordError("cannot load the BPF programs: " + std::string(std::strerror(-err)) +
                      (detail.empty() ? "" : " (" + detail + ")") + "; rerun with --verbose for details");
  }
}

AllocatorProbes::~AllocatorProbes() {
  links_.clear();  // detach before the programs go
}

void AllocatorProbes::addTarget(pid_t pid) {
  const uint32_t key = static_cast<uint32_t>(pid);
  const uint8_t one = 1;
  if (bpf_map__update_elem(skel_->maps.targets, &key, sizeof key, &one, sizeof one, BPF_ANY) != 0)
    throw RecordError("cannot add process " + std::to_string(pid) + " to the BPF target map: " +
                      std::strerror(errno));
}

std::vector<std::string> AllocatorProbes::attach(const std::filesystem::path& object, pid_t pid) {
  std::vector<std::string> attached;
  for (const auto& spec : kProbes) {
    LIBBPF_OPTS(bpf_uprobe_opts, entryOpts, .retprobe = false, .func_name = spec.function);
    bpf_link* entry = bpf_program__attach_uprobe_opts(spec.entry(skel_.get()), pid, object.c_str(), 0, &entryOpts);
    if (!entry) {
      const int err = errno;
      if (std::strcmp(spec.function, "malloc") == 0 || std::strcmp(spec.function, "free") == 0)
        throw RecordError("cannot probe " + std::string(spec.function) + " in " + object.string() +
                          ": " + std::strerror(err) + (err == ENOENT ? " (no such function; pick the allocator with --obj)" : ""));
      continue;  // not every libc has every function (e.g. pvalloc)
    }
    links_.emplace_back(entry);
    if (spec.hasReturn) {
      LIBBPF_OPTS(bpf_uprobe_opts, returnOpts, .retprobe = true, .func_name = spec.function);
      bpf_link* ret = bpf_program__attach_uprobe_opts(skel_->progs.alloc_return, pid, object.c_str(), 0, &returnOpts);
      if (!ret)
        throw RecordError("cannot probe the return of " + std::string(spec.function) + " in " +
                          object.string() + ": " + std::strerror(errno));
      links_.emplace_back(ret);
    }
    attached.emplace_back(spec.function);
  }
  return attached;
}

int AllocatorProbes::ringBufferFd() const { return bpf_map__fd(skel_->maps.events); }

std::array<uint64_t, HT_KIND_COUNT> AllocatorProbes::lostCounts() const {
  std::array<uint64_t, HT_KIND_COUNT> totals{};
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return totals;
  std::vector<uint64_t> perCpu(static_cast<size_t>(cpus));
  for (uint32_t kind = 0; kind < HT_KIND_COUNT; ++kind) {
    if (bpf_map__lookup_elem(skel_->maps.lost, &kind, sizeof kind, perCpu.data(),
                             perCpu.size() * sizeof(uint64_t), 0) != 0)
      continue;
    for (uint64_t v : perCpu) totals[kind] += v;
  }
  return totals;
}

}  // namespace heaptrail::recorder
