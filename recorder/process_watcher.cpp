#include "recorder/process_watcher.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <algorithm>

#include "common/build_id.h"
#include "recorder/proc_maps.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

constexpr size_t kDataPages = 16;  // per CPU; mapping and process records are rare

// Trailer of every record with sample_id_all and sample_type TID|TIME.
struct SampleId {
  uint32_t pid, tid;
  uint64_t time;
};

template <typename T>
T load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

// Copies a record out of the perf buffer, with its time, for sorting.
bpf_perf_event_ret collectRecord(void* ctx, int, perf_event_header* header) {
  auto& pending = *static_cast<std::vector<std::pair<uint64_t, std::vector<uint8_t>>>*>(ctx);
  const auto* bytes = reinterpret_cast<const uint8_t*>(header);
  const uint64_t time = header->size >= sizeof *header + sizeof(SampleId)
                            ? load<SampleId>(bytes + header->size - sizeof(SampleId)).time
                            : 0;
  pending.emplace_back(time, std::vector<uint8_t>(bytes, bytes + header->size));
  return LIBBPF_PERF_EVENT_CONT;
}

}  // namespace

void ProcessWatcher::BufferDeleter::operator()(perf_buffer* buffer) const { perf_buffer__free(buffer); }

int ProcessWatcher::fd() const { return perf_buffer__epoll_fd(buffer_.get()); }

ProcessWatcher::ProcessWatcher(bool reportExits) : reportExits_(reportExits) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_DUMMY;
  attr.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME;
  attr.sample_id_all = 1;
  attr.mmap = 1;
  attr.mmap2 = 1;
  attr.build_id = 1;
  attr.comm = 1;
  attr.comm_exec = 1;
  attr.task = 1;
  attr.use_clockid = 1;
  attr.watermark = 1;
  attr.wakeup_watermark = 1;  // every record wakes the recorder (fd())
  attr.clockid = CLOCK_MONOTONIC;  // the clock of bpf_ktime_get_ns()

  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw RecordError("cannot watch process mappings: cannot count the CPUs");
  cpuMap_.reset(bpf_map_create(BPF_MAP_TYPE_PERF_EVENT_ARRAY, "ht_watch", sizeof(int), sizeof(int),
                               static_cast<uint32_t>(cpus), nullptr));
  if (!cpuMap_)
    throw RecordError(std::string("cannot watch process mappings: ") + std::strerror(errno));
  buffer_.reset(perf_buffer__new_raw(cpuMap_.get(), kDataPages, &attr, collectRecord, &pending_, nullptr));
  if (!buffer_) {
    if (errno == EACCES || errno == EPERM)
      throw RecordError("cannot watch process mappings: perf_event_open denied; run as root or with CAP_PERFMON");
    throw RecordError(std::string("cannot watch process mappings: perf_event_open: ") + std::strerror(errno));
  }
}

ProcessWatcher::~ProcessWatcher() = default;

void ProcessWatcher::drain(const Sink& sink) {
  pending_.clear();
  const int err = perf_buffer__consume(buffer_.get());
  if (err < 0) throw RecordError(std::string("reading process events failed: ") + std::strerror(-err));
  std::stable_sort(pending_.begin(), pending_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [time, record] : pending_) handle(record.data(), record.size(), sink);
}

void ProcessWatcher::handle(const uint8_t* record, size_t size, const Sink& sink) {
  const auto header = load<perf_event_header>(record);
  const uint8_t* body = record + sizeof(perf_event_header);
  if (header.type == PERF_RECORD_LOST) {
    if (size >= sizeof(perf_event_header) + 16) lostRecords_ += load<uint64_t>(body + 8);
    return;
  }
  if (size < sizeof(perf_event_header) + sizeof(SampleId)) return;
  const auto sample = load<SampleId>(record + size - sizeof(SampleId));
  const uint32_t pid = load<uint32_t>(body);
  if (!targets_.count(pid)) return;

  switch (header.type) {
    case PERF_RECORD_MMAP2: {
      constexpr size_t kFixed = 4 + 4 + 8 * 3 + 24 + 4 + 4;
      if (size < sizeof(perf_event_header) + kFixed + sizeof(SampleId)) return;
      schema::MappingRecord m;
      m.timeNs = sample.time;
      m.pid = pid;
      m.start = load<uint64_t>(body + 8);
      m.end = m.start + load<uint64_t>(body + 16);
      m.fileOffset = load<uint64_t>(body + 24);
      const uint8_t* ids = body + 32;
      uint64_t device = 0;
      if (header.misc & PERF_RECORD_MISC_MMAP_BUILD_ID) {
        const uint8_t length = std::min<uint8_t>(ids[0], 20);
        m.buildId.assign(reinterpret_cast<const char*>(ids + 4), length);
      } else {
        device = makedev(load<uint32_t>(ids), load<uint32_t>(ids + 4));
        m.inode = load<uint64_t>(ids + 8);
      }
      const uint32_t prot = load<uint32_t>(body + 56);
      m.executable = (prot & PROT_EXEC) != 0;
      const char* name = reinterpret_cast<const char*>(body + kFixed);
      const size_t maxName = size - sizeof(perf_event_header) - kFixed - sizeof(SampleId);
      m.path.assign(name, strnlen(name, maxName));
      m.source = schema::MappingSource::MMAP_EVENT;
      if (m.buildId.empty() && !m.path.empty() && m.path.front() == '/')
        m.buildId = mappedFileBuildId({static_cast<pid_t>(pid), m.start, m.end, m.path, device, m.inode, {}});
      sink.mapping(std::move(m));
      break;
    }
    case PERF_RECORD_COMM: {
      if (!(header.misc & PERF_RECORD_MISC_COMM_EXEC)) return;  // a thread renaming itself
      schema::ProcessRecord p;
      p.timeNs = sample.time;
      p.pid = pid;
      p.kind = schema::ProcessEventKind::EXEC;
      const char* comm = reinterpret_cast<const char*>(body + 8);
      p.command.assign(comm, strnlen(comm, size - sizeof(perf_event_header) - 8 - sizeof(SampleId)));
      sink.process(std::move(p));
      break;
    }
    case PERF_RECORD_EXIT: {
      // Forks are not reported from here: --follow-forks learns them from ptrace.
      const uint32_t tid = load<uint32_t>(body + 8);
      if (tid != pid || !reportExits_) return;  // a thread, not a process
      schema::ProcessRecord p;
      p.timeNs = sample.time;
      p.pid = pid;
      p.parentPid = load<uint32_t>(body + 4);
      p.kind = schema::ProcessEventKind::EXIT;
      targets_.erase(pid);  // pids get reused
      sink.process(std::move(p));
      break;
    }
    default:
      break;
  }
}

std::string mappedFileBuildId(const MappedFile& mapping) {
  const common::UniqueFd fd = openMappedFile(mapping);
  return fd ? common::readBuildId(fd.get()) : std::string();
}

std::vector<schema::MappingRecord> snapshotMappings(pid_t pid, uint64_t timeNs) {
  std::vector<schema::MappingRecord> result;
  for (const auto& entry : readMaps(pid)) {
    if (!entry.executable) continue;
    schema::MappingRecord m;
    m.timeNs = timeNs;
    m.pid = static_cast<uint32_t>(pid);
    m.start = entry.start;
    m.end = entry.end;
    m.fileOffset = entry.offset;
    m.path = entry.path;
    m.inode = entry.inode;
    m.executable = true;
    m.source = schema::MappingSource::PROC_MAPS;
    if (!m.path.empty() && m.path.front() == '/')
      m.buildId = mappedFileBuildId({pid, m.start, m.end, m.path, entry.device, entry.inode, {}});
    result.push_back(std::move(m));
  }
  return result;
}

}  // namespace heaptrail::recorder
