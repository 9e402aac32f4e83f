#include "recorder/allocator_probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/safe_text.h"
#include "heaptrail.skel.h"
#include "recorder/elf_info.h"
#include "recorder/mapped_file.h"
#include "recorder/probe_sites.h"
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

bool hasReturnProbe(CallShape shape) {
  return shape != CallShape::Munmap && shape != CallShape::Free && shape != CallShape::Release;
}

// What the site of a function of this shape must preserve.
SiteRequirements requirementsOf(CallShape shape, bool releaseStacks) {
  SiteRequirements needs;
  switch (shape) {
    case CallShape::Size1: case CallShape::Free: case CallShape::Release: case CallShape::AllocatorFree:
      needs.argumentsUsed = 1;
      break;
    case CallShape::Size2: case CallShape::Calloc: case CallShape::Realloc: case CallShape::Munmap:
      needs.argumentsUsed = 2;
      break;
    case CallShape::ReallocArray: case CallShape::PosixMemalign: needs.argumentsUsed = 3; break;
    case CallShape::Mmap: needs.argumentsUsed = 4; break;
  }
  // The kernel hijacks the return address at [sp] where the return probe is; a stack
  // captured at entry starts at [sp]. Elsewhere the BPF side adds the offset.
  const bool releases = shape == CallShape::Free || shape == CallShape::Release;
  needs.sameStackPointer = hasReturnProbe(shape) || (releases && releaseStacks);
  return needs;
}

// The part of a function's BPF cookie that says where the probe is in it.
uint64_t siteCookie(const ProbeSite& site) {
  static constexpr X86Register kAbi[kTrackedArguments] = {X86Register::rdi, X86Register::rsi, X86Register::rdx,
                                                          X86Register::rcx};
  uint64_t cookie = HT_COOKIE_STACK_OFFSET(site.stackOffset);
  for (size_t i = 0; i < kTrackedArguments; ++i)
    if (site.arguments[i] != kAbi[i]) cookie |= HT_COOKIE_ARGUMENT(i, static_cast<uint64_t>(site.arguments[i]) + 1);
  return cookie;
}

std::vector<TextSegment> textSegmentsOf(const FunctionIndex& index) {
  std::vector<TextSegment> text;
  for (const auto& s : index.executableSegments) text.push_back({s.vaddr, s.fileOffset, s.fileSize});
  return text;
}

// Whether `pid` has exited (a zombie whose threads are all gone included): a short-lived
// target can exit while the recorder attaches the probes of a library it just mapped.
bool processEnded(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream in(dir + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;
  const auto name = stat.rfind(')');
  if (name == std::string::npos || name + 2 >= stat.size()) return true;
  if (stat[name + 2] != 'Z' && stat[name + 2] != 'X') return false;
  std::error_code ec;
  size_t threads = 0;
  for ([[maybe_unused]] const auto& t : std::filesystem::directory_iterator(dir + "/task", ec)) ++threads;
  return threads <= 1;
}

// The C library's counterpart of a C++ operator's kind (the kind itself otherwise).
schema::EventKind cFamilyKind(schema::EventKind kind) {
  switch (kind) {
    case schema::EventKind::OPERATOR_NEW: case schema::EventKind::OPERATOR_NEW_ARRAY: return schema::EventKind::MALLOC;
    case schema::EventKind::OPERATOR_DELETE: case schema::EventKind::OPERATOR_DELETE_ARRAY: return schema::EventKind::FREE;
    default: return kind;
  }
}

// How the BPF walker treats a pc in a mapping the recorder has not reported yet: it
// finds the file itself (bpf_find_vma, Linux 5.17+ with BTF) on x86-64 and arm64, whose
// tables it can use; elsewhere, or on older kernels, the recorder finishes such walks.
uint32_t newMappingLookup(unwind::StackMode mode) {
#if defined(__x86_64__) || defined(__aarch64__)
  if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0) return HT_NEW_MAPPINGS_DEFER;
  if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_KPROBE, BPF_FUNC_find_vma, nullptr) != 1) return HT_NEW_MAPPINGS_DEFER;
  return mode == unwind::StackMode::Fp ? HT_NEW_MAPPINGS_FRAME_POINTERS : HT_NEW_MAPPINGS_TABLES;
#else
  (void)mode;
  return HT_NEW_MAPPINGS_DEFER;
#endif
}

bool sitesMovable() {
#if defined(__x86_64__)
  return true;
#else
  return false;  // the decoder knows x86-64 only: entries elsewhere
#endif
}

}  // namespace

void configureLibbpfLogging(bool verbose) {
  gVerbose = verbose;
  libbpf_set_print(libbpfPrint);
}

std::string lastLibbpfWarnings() { return gWarnings; }

void AllocatorProbes::SkeletonDeleter::operator()(heaptrail_bpf* skel) const { heaptrail_bpf__destroy(skel); }

void AllocatorProbes::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

AllocatorProbes::AllocatorProbes(const ProbeConfig& config, const std::optional<AllocatorObject>& libc)
    : config_(config) {
  if (!sitesMovable()) config_.sites = ProbeSiteMode::Entry;
  skel_.reset(heaptrail_bpf__open());
  if (!skel_) throw RecordError(std::string("cannot open the BPF programs: ") + std::strerror(errno));
  auto* rodata = skel_->rodata;
  rodata->min_size = config.minSize;
  rodata->max_size = config.maxSize;
  rodata->stack_depth = config.stackDepth;
  rodata->wakeup_bytes = config.ringBufferBytes / 4;
  rodata->release_stacks = config.releaseStacks;
  rodata->unwind_new_mappings = newMappingLookup(config.stackMode);
  if (libc) {
    struct stat st {};
    if (::fstat(libc->fd(), &st) == 0) libc_ = {st.st_dev, st.st_ino};
    if (const auto index = indexFunctions(libc->fd(), {"mmap", "munmap", "free"}); index && libc_) {
      // The probed instruction's address: the BPF side derives libc's load bias from it.
      std::vector<SiteQuery> queries;
      for (const auto& [name, shape] : {std::pair{"mmap", CallShape::Mmap}, std::pair{"munmap", CallShape::Munmap},
                                        std::pair{"free", CallShape::Free}}) {
        const auto it = index->functions.find(name);
        const auto& f = it == index->functions.end() ? FunctionLocation{} : it->second;
        queries.push_back({f.vaddr, f.fileOffset, f.size, requirementsOf(shape, config.releaseStacks)});
      }
      std::vector<ProbeSite> sites(queries.size());
      if (config_.sites == ProbeSiteMode::Cheap) sites = chooseProbeSites(pathOfFd(libc->fd()), textSegmentsOf(*index), queries);
      rodata->alloc_text_start = index->textStart;
      rodata->alloc_text_end = index->textEnd;
      rodata->mmap_vaddr = queries[0].vaddr ? queries[0].vaddr + sites[0].offset : 0;
      rodata->munmap_vaddr = queries[1].vaddr ? queries[1].vaddr + sites[1].offset : 0;
      rodata->free_vaddr = queries[2].vaddr ? queries[2].vaddr + sites[2].offset : 0;
    }
  }
  if (bpf_map__set_max_entries(skel_->maps.events, static_cast<uint32_t>(config.ringBufferBytes)) != 0)
    throw RecordError("invalid ring buffer size");
  multi_ = uprobeMultiSupported();
  rodata->check_targets = !multi_;
  if (multi_) {
    for (bpf_program* p : {skel_->progs.alloc_entry, skel_->progs.alloc_return})
      bpf_program__set_expected_attach_type(p, static_cast<bpf_attach_type>(kUprobeMultiAttachType));
  }
  if (const int err = heaptrail_bpf__load(skel_.get()); err != 0) {
    std::string detail = lastLibbpfWarnings();
    if (auto pos = detail.find('\n'); pos != std::string::npos) detail.resize(pos);
    throw RecordError("cannot load the BPF programs: " + std::string(std::strerror(-err)) +
                      (detail.empty() ? "" : " (" + detail + ")") + "; rerun with --verbose for details");
  }
}

AllocatorProbes::~AllocatorProbes() {
  // Detach before the programs go. Every detach waits for the kernel to be done with
  // the probes (an RCU grace period, tens of milliseconds): all of them at once.
  std::vector<Link> all;
  for (auto& [pid, links] : links_)
    for (auto& l : links) all.push_back(std::move(l));
  links_.clear();
  if (reaper_.joinable()) {
    {
      std::lock_guard lock(reaperMutex_);
      stopping_ = true;
      for (auto& l : retired_) all.push_back(std::move(l));
      retired_.clear();
    }
    reaperWake_.notify_one();
    detachConcurrently(all);
    reaper_.join();
  } else {
    detachConcurrently(all);
  }
}

void AllocatorProbes::retire(std::vector<Link> links) {
  if (links.empty()) return;
  {
    std::lock_guard lock(reaperMutex_);
    for (auto& l : links) retired_.push_back(std::move(l));
  }
  if (!reaper_.joinable()) reaper_ = std::thread([this] { reap(); });
  reaperWake_.notify_one();
}

void AllocatorProbes::reap() {
  std::unique_lock lock(reaperMutex_);
  while (true) {
    reaperWake_.wait(lock, [this] { return stopping_ || !retired_.empty(); });
    if (retired_.empty() && stopping_) return;
    std::vector<Link> batch = std::move(retired_);
    retired_.clear();
    lock.unlock();
    detachConcurrently(batch);
    lock.lock();
  }
}

void AllocatorProbes::detachConcurrently(std::vector<Link>& links) {
  if (links.size() <= 1) {
    links.clear();
    return;
  }
  const size_t threads = std::min<size_t>(links.size(), 64);
  std::vector<std::thread> closers;
  for (size_t t = 0; t < threads; ++t)
    closers.emplace_back([&links, t, threads] {
      for (size_t i = t; i < links.size(); i += threads) links[i] = Link{};
    });
  for (auto& c : closers) c.join();
  links.clear();
}

void AllocatorProbes::addTarget(pid_t pid) {
  const uint32_t key = static_cast<uint32_t>(pid);
  const uint8_t one = 1;
  if (bpf_map__update_elem(skel_->maps.targets, &key, sizeof key, &one, sizeof one, BPF_ANY) != 0)
    throw RecordError("cannot add process " + std::to_string(pid) + " to the BPF target map: " +
                      std::strerror(errno));
}

void AllocatorProbes::removeTarget(pid_t pid) {
  const uint32_t key = static_cast<uint32_t>(pid);
  bpf_map__delete_elem(skel_->maps.targets, &key, sizeof key, 0);
  bpf_map__delete_elem(skel_->maps.trampolines, &key, sizeof key, 0);
  if (auto it = links_.find(pid); it != links_.end()) {
    retire(std::move(it->second));
    links_.erase(it);
  }
  for (auto it = attached_.begin(); it != attached_.end();)
    it = it->first == pid ? attached_.erase(it) : std::next(it);
}

void AllocatorProbes::setTrampoline(pid_t pid, uint64_t address) {
  const uint32_t key = static_cast<uint32_t>(pid);
  bpf_map__update_elem(skel_->maps.trampolines, &key, sizeof key, &address, sizeof address, BPF_ANY);
}

void AllocatorProbes::place(const AllocatorObject& object, const std::vector<FunctionSpec>& specs, dev_t dev,
                            ino_t ino, std::vector<schema::FunctionRecord>& placed) {
  // The file that was opened and indexed is the one probed, through our own descriptor
  // (kept open): never a second lookup of a path the target could have changed.
  PlacedObject result{object.file, pathOfFd(object.fd()), object.displayPath, dev, ino, {}, {}, {}, {}};
  const bool inLibc = libc_ && *libc_ == std::pair(dev, ino);
  std::vector<std::string> names;
  for (const auto& spec : specs) names.push_back(spec.symbol);
  if (const auto index = indexFunctions(object.fd(), names)) {
    // A library with a malloc and a free of its own is an allocator: its releases end
    // there (AllocatorFree). The program's own and libc's keep their shapes.
    const bool allocatorLibrary = !inLibc && !object.program && index->functions.count("malloc") &&
                                  index->functions.count("free");
    // Where free and operator delete are one function (tcmalloc, mimalloc), a release
    // does not say which family it ends: new and delete are recorded as malloc and free
    // there, so that a correct program is not reported as mixing them.
    const auto freeAt = index->functions.find("free");
    const bool oneRelease = allocatorLibrary && freeAt != index->functions.end() &&
                            std::any_of(index->functions.begin(), index->functions.end(), [&](const auto& f) {
                              return f.first.starts_with("_Zd") && f.second.fileOffset == freeAt->second.fileOffset;
                            });
    std::vector<FunctionSpec> found;
    std::vector<SiteQuery> queries;
    for (const auto& spec : specs) {
      const auto it = index->functions.find(spec.symbol);
      if (it == index->functions.end()) continue;
      if (it->second.thumb) {
        thumbFunctions_.push_back(spec.symbol + " in " + object.displayPath);
        continue;
      }
      if (!hooked_.insert({dev, ino, it->second.fileOffset}).second) continue;
      found.push_back(spec);
      if (allocatorLibrary && (spec.shape == CallShape::Free || spec.shape == CallShape::Release))
        found.back().shape = CallShape::AllocatorFree;
      if (oneRelease) found.back().kind = cFamilyKind(spec.kind);
      queries.push_back({it->second.vaddr, it->second.fileOffset, it->second.size,
                         requirementsOf(found.back().shape, config_.releaseStacks)});
    }
    std::vector<ProbeSite> sites(queries.size());
    if (!queries.empty() && sitesMovable())
      sites = chooseProbeSites(result.attachPath, textSegmentsOf(*index), queries,
                               config_.sites == ProbeSiteMode::Entry);
    for (size_t i = 0; i < found.size(); ++i) {
      const FunctionSpec& spec = found[i];
      const ProbeSite& site = sites[i];
      if (gVerbose && config_.sites == ProbeSiteMode::Cheap && !site.emulated)
        std::fprintf(stderr, "heaptrail-record: %s in %s: probed at its entry (%s): %s\n", spec.symbol.c_str(),
                     common::printable(object.displayPath).c_str(), site.instruction.c_str(), site.reason.c_str());
      const uint16_t id = nextFunctionId_++;
      const uint64_t cookie = HT_COOKIE(static_cast<uint32_t>(spec.kind), static_cast<uint32_t>(spec.shape), id) |
                              siteCookie(site) | (inLibc ? HT_COOKIE_IN_LIBC : 0);
      const uint64_t offset = queries[i].fileOffset + site.offset;
      result.entryOffsets.push_back(offset);
      result.entryCookies.push_back(cookie);
      if (hasReturnProbe(spec.shape)) {
        result.returnOffsets.push_back(offset);  // the site keeps the entry's stack pointer
        result.returnCookies.push_back(cookie);
      }
      placed.push_back({id, spec.symbol, spec.kind, object.displayPath, spec.custom, site.offset,
                        site.instruction, site.emulated, queries[i].fileOffset, allocatorLibrary});
    }
  }
  objectIndex_[{dev, ino}] = objects_.size();
  objects_.push_back(std::move(result));
}

std::vector<schema::FunctionRecord> AllocatorProbes::attach(const AllocatorObject& object,
                                                           const std::vector<FunctionSpec>& specs, pid_t pid) {
  std::vector<schema::FunctionRecord> placed;
  struct stat st {};
  if (::fstat(object.fd(), &st) != 0) return placed;
  if (!objectIndex_.count({st.st_dev, st.st_ino})) place(object, specs, st.st_dev, st.st_ino, placed);
  attachPlaced(objectIndex_.at({st.st_dev, st.st_ino}), pid);
  return placed;
}

void AllocatorProbes::attachLikeParent(pid_t child, pid_t parent) {
  std::vector<size_t> objects;
  for (const auto& [pid, index] : attached_)
    if (pid == parent) objects.push_back(index);
  if (objects.empty())
    for (size_t i = 0; i < objects_.size(); ++i) objects.push_back(i);
  for (size_t index : objects) attachPlaced(index, child);
}

void AllocatorProbes::attachPlaced(size_t index, pid_t pid) {
  const PlacedObject& object = objects_[index];
  if (object.entryOffsets.empty() || attached_.count({pid, index})) return;
  // Our own descriptor of the file: valid whichever process showed it first is gone.
  const std::filesystem::path& path = object.attachPath;
  attached_.insert({pid, index});
  const auto attachLinks = [&] {
    auto& links = links_[pid];
    // Return probes first: a call whose entry is seen then always has its return seen.
    if (multi_) {
      if (!object.returnOffsets.empty())
        links.push_back({attachUprobeMulti(bpf_program__fd(skel_->progs.alloc_return), path.string(),
                                           object.returnOffsets, object.returnCookies, pid, true, object.displayPath),
                         nullptr});
      links.push_back({attachUprobeMulti(bpf_program__fd(skel_->progs.alloc_entry), path.string(),
                                         object.entryOffsets, object.entryCookies, pid, false, object.displayPath),
                       nullptr});
      return;
    }
    const auto attachOne = [&](bpf_program* program, uint64_t offset, uint64_t cookie, bool retprobe) {
      LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie, .retprobe = retprobe);
      bpf_link* link = bpf_program__attach_uprobe_opts(program, pid, path.c_str(), offset, &opts);
      if (!link)
        throw RecordError("cannot attach a uprobe to " + common::printable(object.displayPath) + " at offset " + std::to_string(offset) +
                          ": " + std::strerror(errno));
      links.push_back({UprobeMultiLink{}, std::unique_ptr<bpf_link, LinkDeleter>(link)});
    };
    for (size_t i = 0; i < object.returnOffsets.size(); ++i)
      attachOne(skel_->progs.alloc_return, object.returnOffsets[i], object.returnCookies[i], true);
    for (size_t i = 0; i < object.entryOffsets.size(); ++i)
      attachOne(skel_->progs.alloc_entry, object.entryOffsets[i], object.entryCookies[i], false);
  };
  try {
    attachLinks();
  } catch (const RecordError&) {
    if (processEnded(pid)) return;  // nothing left to record there
    throw;
  }
}

void AllocatorProbes::forgetExitedThreads() {
  for (bpf_map* map : {skel_->maps.pending, skel_->maps.releasing}) {
    std::vector<uint32_t> gone;
    uint32_t key = 0, next = 0;
    const uint32_t* previous = nullptr;
    while (bpf_map__get_next_key(map, previous, &next, sizeof next) == 0) {
      // A thread id is valid under /proc even though only processes are listed there.
      if (::access(("/proc/" + std::to_string(next)).c_str(), F_OK) != 0 && errno == ENOENT) gone.push_back(next);
      key = next;
      previous = &key;
    }
    for (uint32_t tid : gone) bpf_map__delete_elem(map, &tid, sizeof tid, 0);
  }
}

int AllocatorProbes::ringBufferFd() const { return bpf_map__fd(skel_->maps.events); }

int AllocatorProbes::targetsMapFd() const { return bpf_map__fd(skel_->maps.targets); }

int AllocatorProbes::unwindTablesFd() const { return bpf_map__fd(skel_->maps.unwind_tables); }

int AllocatorProbes::unwindMappingsFd() const { return bpf_map__fd(skel_->maps.unwind_mappings); }

int AllocatorProbes::unwindFilesFd() const { return bpf_map__fd(skel_->maps.unwind_files); }

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

std::vector<uint32_t> AllocatorProbes::programIds() const {
  std::vector<uint32_t> ids;
  for (bpf_program* p : {skel_->progs.alloc_entry, skel_->progs.alloc_return}) {
    bpf_prog_info info{};
    uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &length) == 0) ids.push_back(info.id);
  }
  return ids;
}

}  // namespace heaptrail::recorder
