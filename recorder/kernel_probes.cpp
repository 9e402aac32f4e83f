#include "recorder/kernel_probes.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "bpf/heaptrail_kernel_event.h"
#include "heaptrail_kernel.skel.h"
#include "recorder/allocator_probes.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

struct Group {
  uint32_t bit;
  const char* name;
  std::vector<const char*> tracepoints;
};

const std::vector<Group>& groups() {
  static const std::vector<Group> all = {
      {HT_KGROUP_KMALLOC, "kmalloc", {"kmalloc", "kfree"}},
      {HT_KGROUP_CACHE, "cache", {"kmem_cache_alloc", "kmem_cache_free"}},
      {HT_KGROUP_PAGE, "page", {"mm_page_alloc", "mm_page_free"}},
      {HT_KGROUP_PERCPU, "percpu", {"percpu_alloc_percpu", "percpu_free_percpu"}},
  };
  return all;
}

const btf_type* skipTypedefs(const btf* types, const btf_type* t) {
  while (t && (btf_is_typedef(t) || btf_is_const(t) || btf_is_volatile(t) || btf_is_restrict(t)))
    t = btf__type_by_id(types, t->type);
  return t;
}

// The prototype of tracepoint `name`'s BTF probe function (its first parameter is the
// probe's data pointer, then the tracepoint's arguments); nullptr when the kernel has none.
const btf_type* tracepointProto(const btf* types, const std::string& name) {
  const int id = btf__find_by_name_kind(types, ("btf_trace_" + name).c_str(), BTF_KIND_TYPEDEF);
  if (id < 0) return nullptr;
  const btf_type* t = skipTypedefs(types, btf__type_by_id(types, static_cast<uint32_t>(id)));
  if (!t || !btf_is_ptr(t)) return nullptr;
  t = btf__type_by_id(types, t->type);
  return t && btf_is_func_proto(t) ? t : nullptr;
}

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};

}  // namespace

uint32_t parseKernelEventGroups(const std::string& list) {
  uint32_t bits = 0;
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (name == "all") {
      for (const auto& g : groups()) bits |= g.bit;
      continue;
    }
    bool known = false;
    for (const auto& g : groups())
      if (name == g.name) {
        bits |= g.bit;
        known = true;
      }
    if (!known) return 0;
  }
  return bits;
}

std::vector<std::string> kernelEventGroupNames(uint32_t bits) {
  std::vector<std::string> names;
  for (const auto& g : groups())
    if (bits & g.bit) names.emplace_back(g.name);
  return names;
}

KernelTypes readKernelTypes() {
  std::unique_ptr<btf, BtfDeleter> types(btf__load_vmlinux_btf());
  if (!types)
    throw RecordError("this kernel has no BTF (/sys/kernel/btf/vmlinux): --kernel needs a kernel built with "
                      "CONFIG_DEBUG_INFO_BTF=y (5.8 or newer)");
  KernelTypes k;
  for (const auto& g : groups())
    for (const char* tp : g.tracepoints)
      if (!tracepointProto(types.get(), tp)) k.missingTracepoints.emplace_back(tp);
  if (const btf_type* proto = tracepointProto(types.get(), "kmem_cache_alloc"); proto && btf_vlen(proto) > 3) {
    const btf_type* third = skipTypedefs(types.get(), btf__type_by_id(types.get(), btf_params(proto)[3].type));
    k.cacheAllocHasCache = third && btf_is_ptr(third);
  }
  if (const btf_type* proto = tracepointProto(types.get(), "percpu_alloc_percpu"))
    k.percpuHasBytesAlloc = btf_vlen(proto) >= 10;
  const int page = btf__find_by_name_kind(types.get(), "page", BTF_KIND_STRUCT);
  if (page > 0) {
    const auto size = btf__resolve_size(types.get(), static_cast<uint32_t>(page));
    if (size > 0) k.pageStructBytes = static_cast<uint32_t>(size);
  }
  return k;
}

void KernelProbes::SkeletonDeleter::operator()(heaptrail_kernel_bpf* skel) const { heaptrail_kernel_bpf__destroy(skel); }
void KernelProbes::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

KernelProbes::KernelProbes(const KernelProbeConfig& config, const KernelTypes& types) {
  for (const auto& g : groups()) {
    if (!(config.groups & g.bit)) continue;
    for (const char* tp : g.tracepoints)
      for (const auto& missing : types.missingTracepoints)
        if (missing == tp)
          throw RecordError("this kernel has no tracepoint " + missing + " (--kernel-events " + g.name +
                            "): leave that group out of --kernel-events");
  }
  skel_.reset(heaptrail_kernel_bpf__open());
  if (!skel_) throw RecordError(std::string("cannot open the kernel BPF programs: ") + std::strerror(errno));
  auto* rodata = skel_->rodata;
  rodata->self_tgid = static_cast<uint32_t>(::getpid());
  rodata->page_size = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  rodata->kernel_stack_depth = config.kernelStackDepth;
  rodata->user_stack_depth = config.userStackDepth;
  rodata->wakeup_bytes = config.ringBufferBytes / 4;

  auto* p = &skel_->progs;
  const auto use = [](bpf_program* program, bool on) { bpf_program__set_autoload(program, on); };
  const bool kmalloc = config.groups & HT_KGROUP_KMALLOC, cache = config.groups & HT_KGROUP_CACHE;
  const bool page = config.groups & HT_KGROUP_PAGE, percpu = config.groups & HT_KGROUP_PERCPU;
  use(p->on_kmalloc, kmalloc);
  use(p->on_kfree, kmalloc);
  use(p->on_kmem_cache_alloc, cache && types.cacheAllocHasCache);
  use(p->on_kmem_cache_alloc_sizes, cache && !types.cacheAllocHasCache);
  use(p->on_kmem_cache_free, cache);
  use(p->on_page_alloc, page);
  use(p->on_page_free, page);
  use(p->on_percpu_alloc, percpu && types.percpuHasBytesAlloc);
  use(p->on_percpu_alloc_per_cpu_size, percpu && !types.percpuHasBytesAlloc);
  use(p->on_percpu_free, percpu);

  if (bpf_map__set_max_entries(skel_->maps.kernel_events, static_cast<uint32_t>(config.ringBufferBytes)) != 0)
    throw RecordError("invalid ring buffer size");
  if (config.targetsMapFd >= 0 && bpf_map__reuse_fd(skel_->maps.targets, config.targetsMapFd) != 0)
    throw RecordError(std::string("cannot share the target map with the kernel programs: ") + std::strerror(errno));
  if (const int err = heaptrail_kernel_bpf__load(skel_.get()); err != 0) {
    std::string detail = lastLibbpfWarnings();
    if (auto pos = detail.find('\n'); pos != std::string::npos) detail.resize(pos);
    throw RecordError("cannot load the kernel BPF programs: " + std::string(std::strerror(-err)) +
                      (detail.empty() ? "" : " (" + detail + ")") + "; rerun with --verbose for details");
  }
  // The interrupt exits before their entries: an entry counted without its exit would
  // leave the CPU in "interrupt context" for good (an exit without an entry is ignored).
  for (const bool exits : {true, false}) {
    bpf_program* program = nullptr;
    bpf_object__for_each_program(program, skel_->obj) {
      const std::string_view name = bpf_program__name(program);
      if (!bpf_program__autoload(program) || name.ends_with("_exit") != exits) continue;
      bpf_link* link = bpf_program__attach(program);
      if (!link)
        throw RecordError(std::string("cannot attach to the kernel tracepoint of ") + std::string(name) + ": " +
                          std::strerror(errno));
      links_.emplace_back(link);
    }
  }
}

KernelProbes::~KernelProbes() { links_.clear(); }

int KernelProbes::ringBufferFd() const { return bpf_map__fd(skel_->maps.kernel_events); }

std::array<uint64_t, HT_KIND_COUNT> KernelProbes::lostCounts() const {
  std::array<uint64_t, HT_KIND_COUNT> totals{};
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return totals;
  std::vector<uint64_t> perCpu(static_cast<size_t>(cpus));
  for (uint32_t kind = 0; kind < HT_KIND_COUNT; ++kind) {
    if (bpf_map__lookup_elem(skel_->maps.kernel_lost, &kind, sizeof kind, perCpu.data(),
                             perCpu.size() * sizeof(uint64_t), 0) != 0)
      continue;
    for (uint64_t v : perCpu) totals[kind] += v;
  }
  return totals;
}

}  // namespace heaptrail::recorder
