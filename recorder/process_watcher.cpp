#include "recorder/process_watcher.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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

}  // namespace

struct ProcessWatcher::CpuBuffer {
  int fd = -1;
  void* base = nullptr;
  size_t mappedBytes = 0;
  ~CpuBuffer() {
    if (base) ::munmap(base, mappedBytes);
    if (fd >= 0) ::close(fd);
  }
};

ProcessWatcher::ProcessWatcher(bool followForks) : followForks_(followForks) {
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
  attr.clockid = CLOCK_MONOTONIC;  // the clock of bpf_ktime_get_ns()

  const long pageSize = ::sysconf(_SC_PAGESIZE);
  const long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
  for (long cpu = 0; cpu < cpus; ++cpu) {
    auto buffer = std::make_unique<CpuBuffer>();
    buffer->fd = static_cast<int>(::syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
    if (buffer->fd < 0) {
      if (errno == ENODEV || errno == ENOENT) continue;  // offline CPU
      if (errno == EACCES || errno == EPERM)
        throw RecordError("cannot watch process mappings: perf_event_open denied; run as root or with CAP_PERFMON");
      throw RecordError(std::string("cannot watch process mappings: perf_event_open: ") + std::strerror(errno));
    }
    buffer->mappedBytes = static_cast<size_t>(pageSize) * (1 + kDataPages);
    buffer->base = ::mmap(nullptr, buffer->mappedBytes, PROT_READ | PROT_WRITE, MAP_SHARED, buffer->fd, 0);
    if (buffer->base == MAP_FAILED) {
      buffer->base = nullptr;
      throw RecordError(std::string("cannot map a perf buffer: ") + std::strerror(errno));
    }
    buffers_.push_back(std::move(buffer));
  }
  if (buffers_.empty()) throw RecordError("cannot watch process mappings: no CPU accepted a perf event");
}

ProcessWatcher::~ProcessWatcher() = default;

void ProcessWatcher::drain(const Sink& sink) {
  pending_.clear();
  for (auto& buffer : buffers_) {
    auto* meta = static_cast<perf_event_mmap_page*>(buffer->base);
    const uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = meta->data_tail;
    const auto* data = static_cast<const uint8_t*>(buffer->base) + meta->data_offset;
    const uint64_t size = meta->data_size;
    while (tail < head) {
      const uint64_t offset = tail % size;
      perf_event_header header;
      std::vector<uint8_t> record(sizeof header);
      for (size_t i = 0; i < sizeof header; ++i) record[i] = data[(offset + i) % size];
      std::memcpy(&header, record.data(), sizeof header);
      if (header.size < sizeof header) break;  // cannot happen; do not spin on it
      record.resize(header.size);
      for (size_t i = sizeof header; i < header.size; ++i) record[i] = data[(offset + i) % size];
      const uint64_t time = header.size >= sizeof header + sizeof(SampleId)
                                ? load<SampleId>(record.data() + header.size - sizeof(SampleId)).time
                                : 0;
      pending_.emplace_back(time, std::move(record));
      tail += header.size;
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
  }
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
  if (header.type == PERF_RECORD_FORK && followForks_ && load<uint32_t>(body + 8) == pid &&
      targets_.count(load<uint32_t>(body + 4)))
    targets_.insert(pid);  // a new process (not a thread) of a target
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
      if (header.misc & PERF_RECORD_MISC_MMAP_BUILD_ID) {
        const uint8_t length = std::min<uint8_t>(ids[0], 20);
        m.buildId.assign(reinterpret_cast<const char*>(ids + 4), length);
      } else {
        m.inode = load<uint64_t>(ids + 8);
      }
      const uint32_t prot = load<uint32_t>(body + 56);
      m.executable = (prot & PROT_EXEC) != 0;
      const char* name = reinterpret_cast<const char*>(body + kFixed);
      const size_t maxName = size - sizeof(perf_event_header) - kFixed - sizeof(SampleId);
      m.path.assign(name, strnlen(name, maxName));
      m.source = schema::MappingSource::MMAP_EVENT;
      if (m.buildId.empty() && !m.path.empty() && m.path.front() == '/')
        m.buildId = mappedFileBuildId(static_cast<pid_t>(pid), m.start, m.end, m.path);
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
    case PERF_RECORD_EXIT:
    case PERF_RECORD_FORK: {
      const uint32_t ppid = load<uint32_t>(body + 4);
      const uint32_t tid = load<uint32_t>(body + 8);
      if (tid != pid) return;  // a thread, not a process
      schema::ProcessRecord p;
      p.timeNs = sample.time;
      p.pid = pid;
      p.parentPid = ppid;
      p.kind = header.type == PERF_RECORD_EXIT ? schema::ProcessEventKind::EXIT
                                               : schema::ProcessEventKind::FORK;
      if (p.kind == schema::ProcessEventKind::FORK && !followForks_) return;
      if (p.kind == schema::ProcessEventKind::EXIT) targets_.erase(pid);  // pids get reused
      sink.process(std::move(p));
      break;
    }
    default:
      break;
  }
}

std::string mappedFileBuildId(pid_t pid, uint64_t start, uint64_t end, const std::string& path) {
  char mapFile[96];
  std::snprintf(mapFile, sizeof mapFile, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, start, end);
  std::string id = common::readBuildId(mapFile);
  if (id.empty()) id = common::readBuildId("/proc/" + std::to_string(pid) + "/root" + path);
  return id;
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
    if (!m.path.empty() && m.path.front() == '/') m.buildId = mappedFileBuildId(pid, m.start, m.end, m.path);
    result.push_back(std::move(m));
  }
  return result;
}

}  // namespace heaptrail::recorder
