#include "recorder/allocator_probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "heaptrail.skel.h"
#include "heaptrail_fork.skel.h"
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

bpf_program* entryProgram(heaptrail_bpf* skel, CallShape shape) {
  switch (shape) {
    case CallShape::Size1: return skel->progs.alloc_size1_enter;
    case CallShape::Size2: return skel->progs.alloc_size2_enter;
    case CallShape::Calloc: return skel->progs.calloc_enter;
    case CallShape::Realloc: return skel->progs.realloc_enter;
    case CallShape::ReallocArray: return skel->progs.reallocarray_enter;
    case CallShape::PosixMemalign: return skel->progs.posix_memalign_enter;
    case CallShape::Mmap: return skel->progs.mmap_enter;
    case CallShape::Munmap: return skel->progs.munmap_enter;
    case CallShape::Free: return skel->progs.free_enter;
    case CallShape::Release: return skel->progs.release_enter;
  }
  return nullptr;
}

bool hasReturnProbe(CallShape shape) {
  return shape != CallShape::Munmap && shape != CallShape::Free && shape != CallShape::Release;
}

}  // namespace

void configureLibbpfLogging(bool verbose) {
  gVerbose = verbose;
  libbpf_set_print(libbpfPrint);
}

std::string lastLibbpfWarnings() { return gWarnings; }

void AllocatorProbes::SkeletonDeleter::operator()(heaptrail_bpf* skel) const {
  heaptrail_bpf__destroy(skel);
}

void AllocatorProbes::SkeletonDeleter::operator()(heaptrail_fork_bpf* skel) const {
  heaptrail_fork_bpf__destroy(skel);
}

void AllocatorProbes::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

AllocatorProbes::AllocatorProbes(const ProbeConfig& config, const std::optional<AllocatorObject>& libc) {
  skel_.reset(heaptrail_bpf__open());
  if (!skel_) throw RecordError(std::string("cannot open the BPF programs: ") + std::strerror(errno));
  auto* rodata = skel_->rodata;
  rodata->min_size = config.minSize;
  rodata->max_size = config.maxSize;
  rodata->stack_depth = config.stackDepth;
  rodata->wakeup_bytes = config.ringBufferBytes / 4;
  rodata->release_stacks = config.releaseStacks;
  if (libc) {
    if (const auto index = indexFunctions(libc->attachPath, {"mmap", "munmap"})) {
      const auto vaddrOf = [&](const char* name) {
        const auto it = index->functions.find(name);
        return it == index->functions.end() ? 0 : it->second.vaddr;
      };
      rodata->alloc_text_start = index->textStart;
      rodata->alloc_text_end = index->textEnd;
      rodata->mmap_vaddr = vaddrOf("mmap");
      rodata->munmap_vaddr = vaddrOf("munmap");
    }
  }
  if (bpf_map__set_max_entries(skel_->maps.events, static_cast<uint32_t>(config.ringBufferBytes)) != 0)
    throw RecordError("invalid ring buffer size");
  if (const int err = heaptrail_bpf__load(skel_.get()); err != 0) {
    std::string detail = lastLibbpfWarnings();
    if (auto pos = detail.find('\n'); pos != std::string::npos) detail.resize(pos);
    throw RecordError("cannot load the BPF programs: " + std::string(std::strerror(-err)) +
                      (detail.empty() ? "" : " (" + detail + ")") + "; rerun with --verbose for details");
  }
  if (config.followForks) {
    // A separate object so that recording without it never loads the kernel's BTF.
    forkSkel_.reset(heaptrail_fork_bpf__open());
    if (!forkSkel_ ||
        bpf_map__reuse_fd(forkSkel_->maps.targets, bpf_map__fd(skel_->maps.targets)) != 0 ||
        heaptrail_fork_bpf__load(forkSkel_.get()) != 0)
      throw RecordError(std::string("cannot follow forks: loading the fork tracker failed: ") +
                        std::strerror(errno) + "; rerun with --verbose for details");
    bpf_link* link = bpf_program__attach(forkSkel_->progs.follow_fork);
    if (!link) throw RecordError(std::string("cannot follow forks: ") + std::strerror(errno));
    links_.emplace_back(link);
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

std::vector<schema::FunctionRecord> AllocatorProbes::attach(const AllocatorObject& object,
                                                           const std::vector<FunctionSpec>& specs, pid_t pid) {
  std::vector<std::string> names;
  for (const auto& spec : specs) names.push_back(spec.symbol);
  const auto index = indexFunctions(object.attachPath, names);
  struct stat st {};
  if (!index || ::stat(object.attachPath.c_str(), &st) != 0) return {};

  std::vector<schema::FunctionRecord> hooked;
  for (const auto& spec : specs) {
    const auto it = index->functions.find(spec.symbol);
    if (it == index->functions.end()) continue;
    if (it->second.thumb) {
      thumbFunctions_.push_back(spec.symbol + " in " + object.displayPath);
      continue;
    }
    const uint64_t offset = it->second.fileOffset;
    if (!hooked_.insert({st.st_dev, st.st_ino, offset}).second) continue;
    const uint16_t id = nextFunctionId_++;
    const auto attachOne = [&](bpf_program* program, bool retprobe) {
      LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = HT_COOKIE(static_cast<uint32_t>(spec.kind), id), .retprobe = retprobe);
      bpf_link* link = bpf_program__attach_uprobe_opts(program, pid, object.attachPath.c_str(), offset, &opts);
      if (!link)
        throw RecordError("cannot attach a uprobe to " + spec.symbol + " in " + object.displayPath + ": " +
                          std::strerror(errno));
      links_.emplace_back(link);
    };
    attachOne(entryProgram(skel_.get(), spec.shape), false);
    if (hasReturnProbe(spec.shape)) attachOne(skel_->progs.alloc_return, true);
    hooked.push_back({id, spec.symbol, spec.kind, object.displayPath, spec.custom});
  }
  return hooked;
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
