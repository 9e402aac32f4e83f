#include "recorder/allocator_probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <iterator>
#include <set>

#include "heaptrail.skel.h"
#include "recorder/elf_info.h"
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
    {"memalign", [](heaptrail_bpf* s) { return s->progs.memalign_enter; }, true},
    {"aligned_alloc", [](heaptrail_bpf* s) { return s->progs.aligned_alloc_enter; }, true},
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

AllocatorProbes::AllocatorProbes(const ProbeConfig& config, const std::filesystem::path& object,
                                 bool sharedAllocator)
    : object_(object) {
  std::vector<std::string> names;
  for (const auto& spec : kProbes) names.emplace_back(spec.function);
  const auto index = indexFunctions(object, names);
  if (!index) throw RecordError("cannot read the allocator object " + object.string() + ": not an ELF file");
  for (const char* required : {"malloc", "free"})
    if (!index->functions.count(required))
      throw RecordError(object.string() + " defines no " + required + " function; pick the allocator with --obj");
  std::set<uint64_t> seen;
  for (size_t i = 0; i < std::size(kProbes); ++i) {
    const auto it = index->functions.find(kProbes[i].function);
    if (it == index->functions.end() || !seen.insert(it->second.fileOffset).second) continue;
    sites_.emplace_back(i, it->second.fileOffset);
    probed_.emplace_back(kProbes[i].function);
  }

  skel_.reset(heaptrail_bpf__open());
  if (!skel_) throw RecordError(std::string("cannot open the BPF programs: ") + std::strerror(errno));
  auto* rodata = skel_->rodata;
  rodata->min_size = config.minSize;
  rodata->max_size = config.maxSize;
  rodata->stack_depth = config.stackDepth;
  rodata->wakeup_bytes = config.ringBufferBytes / 4;
  if (sharedAllocator) {
    const auto vaddrOf = [&](const char* name) {
      const auto it = index->functions.find(name);
      return it == index->functions.end() ? 0 : it->second.vaddr;
    };
    rodata->alloc_text_start = index->textStart;
    rodata->alloc_text_end = index->textEnd;
    rodata->mmap_vaddr = vaddrOf("mmap");
    rodata->munmap_vaddr = vaddrOf("munmap");
  }
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

void AllocatorProbes::attach(pid_t pid) {
  for (const auto& [specIndex, offset] : sites_) {
    const ProbeSpec& spec = kProbes[specIndex];
    const auto attachOne = [&](bpf_program* program, bool retprobe) {
      LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = retprobe);
      bpf_link* link = bpf_program__attach_uprobe_opts(program, pid, object_.c_str(), offset, &opts);
      if (!link)
        throw RecordError("cannot attach a uprobe to " + std::string(spec.function) + " in " +
                          object_.string() + ": " + std::strerror(errno));
      links_.emplace_back(link);
    };
    attachOne(spec.entry(skel_.get()), false);
    if (spec.hasReturn) attachOne(skel_->progs.alloc_return, true);
  }
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
