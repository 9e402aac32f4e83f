#include "recorder/recording_session.h"

#include <bpf/libbpf.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "bpf/heaptrail_event.h"
#include "common/safe_text.h"
#include "common/saturating.h"
#include "recorder/allocator_locator.h"
#include "recorder/allocator_probes.h"
#include "recorder/clock.h"
#include "recorder/fork_follower.h"
#include "recorder/kernel_recording.h"
#include "recorder/mapped_file.h"
#include "recorder/output_file.h"
#include "recorder/preflight.h"
#include "recorder/process_watcher.h"
#include "recorder/record_error.h"
#include "recorder/stack_table.h"
#include "recorder/stop_signals.h"
#include "recorder/trace_header.h"
#include "recorder/unwind/deferred_walk.h"
#include "recorder/unwind/unwind_maps.h"
#include "schema/event_kinds.h"
#include "schema/trace_error.h"
#include "schema/trace_writer.h"

namespace heaptrail::recorder {
namespace {

constexpr uint64_t kFlushIntervalNs = 1'000'000'000;  // the format promises >= 1 chunk/s
// Small chunks keep the recorder's memory low: a chunk exists as columns, as a Cap'n
// Proto message and compressed, all at once.
// Version 2 encodes an event as it comes in ~2-5 bytes: large chunks give zstd the
// context it needs (BENCHMARKS.md) for a few hundred KiB held.
constexpr size_t kMaxChunkEvents = 1 << 16;
constexpr int kPollIntervalMs = 100;
// After Ctrl-C, how long a started command gets to exit by itself (it usually got the
// same Ctrl-C from the terminal) before the recorder terminates it.
constexpr uint64_t kChildGraceNs = 500'000'000;

// The value of `name` in the environment a process started with ("" when unset or
// unreadable).
std::string environmentValue(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0'))
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=')
      return entry.substr(name.size() + 1);
  return {};
}

class Session {
 public:
  Session(const RecordOptions& options, TargetProcess target, AllocatorObjects allocators,
          schema::TraceWriter& writer, OutputFile& output, StopSignals& signals,
          std::function<void(const RecordSummary&)> onStarted, std::function<void(const RecordSummary&)> onProgress)
      : options_(options),
        target_(std::move(target)),
        allocators_(std::move(allocators)),
        writer_(writer),
        output_(output),
        signals_(signals),
        onStarted_(std::move(onStarted)),
        onProgress_(std::move(onProgress)) {}

  RecordSummary run();

 private:
  static int onRingEvent(void* self, void* data, size_t size) {
    static_cast<Session*>(self)->addEvent(static_cast<const ht_event*>(data), size);
    return 0;
  }
  void addEvent(const ht_event* event, size_t size);
  void hookAllocators();
  // Hooks what `object` defines in `pid`; true when it is an allocator library hooked
  // for the first time.
  bool hook(const AllocatorObject& object, pid_t pid);
  void onProcessEvent(schema::ProcessRecord p);
  void drainAll();
  void flush(bool sync);
  void recordExit();
  void followProcesses();
  void hookNewImage(pid_t pid);
  void addProcessRecord(uint32_t pid, schema::ProcessEventKind kind, uint32_t parent = 0,
                        std::optional<ExitStatus> status = std::nullopt);
  std::array<uint64_t, HT_KIND_COUNT> lostCounts() const;
  // The recording is ending before the started command: end the command too.
  void stopWorkload(uint64_t now, uint64_t stopRequestedAt, bool grace);

  const RecordOptions& options_;
  TargetProcess target_;
  AllocatorObjects allocators_;
  schema::TraceWriter& writer_;
  OutputFile& output_;
  StopSignals& signals_;
  std::function<void(const RecordSummary&)> onStarted_;
  std::function<void(const RecordSummary&)> onProgress_;
  std::vector<FunctionSpec> specs_;
  std::vector<schema::FunctionRecord> hooked_;
  std::set<std::string> lateAllocators_;  // allocator libraries warned about
  std::unique_ptr<ForkFollower> follower_;  // --follow-forks
  // (executable, its LD_PRELOAD) -> what it loads
  std::map<std::pair<std::pair<dev_t, ino_t>, std::string>, AllocatorObjects> imageObjects_;
  bool exitRecorded_ = false;
  std::unique_ptr<AllocatorProbes> probes_;
  std::unique_ptr<ProcessWatcher> watcher_;
  std::unique_ptr<unwind::UnwindMaps> unwind_;
  std::vector<pid_t> exitedProcesses_;
  void addUnwindMapping(const schema::MappingRecord& m);
  void drainMappings();
  std::unique_ptr<KernelRecording> kernel_;  // --kernel with -p / -- cmd
  ring_buffer* ring_ = nullptr;
  StackTable stacks_;
  schema::ChunkBuilder chunk_;
  std::array<uint64_t, HT_KIND_COUNT> lostWritten_{};
  RecordSummary summary_;
  uint64_t startNs_ = 0;
  uint64_t terminatedAt_ = 0;  // when the started command was sent SIGTERM
  bool workloadGotTheSignal_ = false;
};

void Session::addEvent(const ht_event* event, size_t size) {
  if (size < HT_EVENT_HEADER_SIZE || event->kind >= HT_KIND_COUNT) return;
  uint32_t stackId = 0;
  const size_t stackBytes =
      std::min<size_t>(event->stack_bytes & ~HT_STACK_FLAGS, size - HT_EVENT_HEADER_SIZE) & ~size_t{7};
  bool incomplete = event->stack_bytes & HT_STACK_INCOMPLETE;
  std::span<const uint64_t> frames(reinterpret_cast<const uint64_t*>(event->stack), stackBytes / 8);
  std::vector<uint64_t> finished;
  if ((event->stack_bytes & HT_STACK_DEFERRED) && size >= sizeof(ht_event) + sizeof(ht_resume)) {
    // The walk reached a mapping the BPF side did not know yet: finish it here, once the
    // mappings recorded so far are known.
    const auto* deferred = reinterpret_cast<const ht_deferred_event*>(event);
    drainMappings();
    finished.assign(frames.begin(), frames.end());
    const std::span<const uint8_t> stack(deferred->stack, size - offsetof(ht_deferred_event, stack));
    incomplete = !unwind::finishDeferredWalk(*unwind_, static_cast<pid_t>(event->pid), deferred->resume, stack,
                                             options_.stackDepth, finished);
    frames = finished;
    ++summary_.deferredStacks;
  }
  if (!frames.empty()) {
    // The flag is part of the identity: the same frames, once complete and once cut, are
    // two stacks.
    std::string_view key(reinterpret_cast<const char*>(frames.data()), frames.size_bytes());
    std::string marked;  // built only for a cut stack: no allocation per event otherwise
    if (incomplete) {
      marked.assign(key);
      marked.push_back('\0');
      key = marked;
    }
    const auto lookup = stacks_.intern(key);
    stackId = lookup.id;
    if (lookup.isNew) {
      chunk_.addStack(stackId, frames, incomplete);
      summary_.incompleteStacks += incomplete;
    }
  }
  chunk_.addEvent({static_cast<schema::EventKind>(event->kind), event->ts_ns, event->pid, event->tid,
                   event->address, event->size, stackId, event->function});
  ++summary_.events;
  if (schema::isAllocation(static_cast<schema::EventKind>(event->kind))) {
    ++summary_.allocations;
    if (event->kind != HT_MMAP) ++summary_.heapAllocations;
  }
  else
    ++summary_.frees;
}

void Session::addUnwindMapping(const schema::MappingRecord& m) {
  if (!m.executable || m.path == "[uprobes]") return;  // the return-probe trampoline is no frame
  common::UniqueFd fd;
  if (!m.path.empty() && m.path.front() == '/')
    fd = openMappedFile({static_cast<pid_t>(m.pid), m.start, m.end, m.path, 0, m.inode, m.buildId});
  const auto table =
      unwind_->addMapping(static_cast<pid_t>(m.pid), m.start, m.end, m.fileOffset, fd ? fd.get() : -1, m.buildId);
  if (options_.verbose)
    std::cerr << "heaptrail-record: unwind table of " << common::printable(m.path) << " (pid " << m.pid << "): "
              << (table && !table->empty() ? std::to_string(table->rows.size()) + " rows"
                  : !fd && !table          ? std::string("file not readable, stacks end there")
                  : options_.stackMode == unwind::StackMode::Cfi ? std::string("none, stacks end there")
                                                                  : std::string("none, frame pointers"))
              << "\n";
}

bool Session::hook(const AllocatorObject& object, pid_t pid) {
  if (!object.isOpen()) return false;
  bool allocatorLibrary = false;
  for (auto& f : probes_->attach(object, specs_, pid)) {
    allocatorLibrary = allocatorLibrary || f.allocatorLibrary;
    chunk_.addFunction(f);
    hooked_.push_back(std::move(f));
  }
  return allocatorLibrary;
}

void Session::hookAllocators() {
  specs_ = standardFunctions();
  for (const auto& argument : options_.customFunctions) specs_.push_back(*parseCustomFunction(argument));
  for (const auto& object : allocators_.objects) {
    signals_.throwIfRequested();  // attaching to many objects takes a while: Ctrl-C stops it
    hook(object, target_.pid());
  }

  const auto hooked = [&](const std::string& symbol) {
    return std::any_of(hooked_.begin(), hooked_.end(), [&](const auto& f) { return f.symbol == symbol; });
  };
  if (!hooked("malloc") || !hooked("free")) {
    if (target_.exited())
      throw RecordError("process " + std::to_string(target_.pid()) + " exited before it could be recorded");
  }
  const auto& thumb = probes_->thumbFunctions();
  if ((!hooked("malloc") || !hooked("free")) && !thumb.empty())
    throw RecordError(thumb.front() + " is Thumb code: a 32-bit arm kernel places uprobes on ARM "
                      "instructions only, so only an allocator built with -marm can be recorded");
  for (const auto& function : thumb)
    std::cerr << "heaptrail-record: warning: " << function << " is Thumb code: not recorded\n";
  if (!hooked("malloc") || !hooked("free"))
    throw RecordError("no allocator found: neither the program nor its libraries define malloc and free; "
                      "name the allocator object with --obj");
  for (const auto& spec : specs_)
    if (spec.custom && !hooked(spec.symbol))
      throw RecordError("--alloc-fn " + spec.argument + ": no function " + spec.symbol +
                        " in the program or its libraries");
}

void Session::onProcessEvent(schema::ProcessRecord p) {
  using Kind = schema::ProcessEventKind;
  // A started command's exit is recorded from waitpid(), with its status.
  if (p.kind == Kind::EXIT && target_.launched() && p.pid == static_cast<uint32_t>(target_.pid())) return;
  // A new image: its mappings follow. A process gone: its mappings are forgotten once
  // its last events are read (drainAll).
  if (p.kind == Kind::EXEC) {
    unwind_->removeProcess(static_cast<pid_t>(p.pid));
    probes_->setTrampoline(static_cast<pid_t>(p.pid), 0);  // as in hookNewImage
  }
  if (p.kind == Kind::EXIT) exitedProcesses_.push_back(static_cast<pid_t>(p.pid));
  if (p.kind == Kind::EXEC) {
    p.commandLine = readCommandLine(static_cast<pid_t>(p.pid));

    // The new image may bring its own allocator (a static program started by a shell):
    // the file it runs, never a path it could have changed since.
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(p.pid) + "/exe", ec);
    if (auto fd = openExecutableOf(static_cast<pid_t>(p.pid)); fd && !ec) {
      AllocatorObject program(std::move(fd), exe.string());
      program.program = true;
      hook(program, static_cast<pid_t>(p.pid));
    }
  }
  chunk_.addProcessEvent(std::move(p));
}

void Session::drainAll() {
  // Mappings first: a mapping is always reported before any event that uses it, so it
  // lands in the same chunk as that event or an earlier one.
  drainMappings();
  const int n = ring_buffer__consume(ring_);
  if (n < 0) throw RecordError(std::string("reading the BPF ring buffer failed: ") + std::strerror(-n));
  for (pid_t pid : exitedProcesses_) unwind_->removeProcess(pid);
  exitedProcesses_.clear();
}

void Session::drainMappings() {
  // Probes first, for every new mapping: a library's first calls race with them.
  // Unwind tables (compiled on first use) come after.
  std::vector<schema::MappingRecord> mappings;
  watcher_->drain({
      [this, &mappings](schema::MappingRecord m) {
        // A library loaded later (dlopen, or one the start-up scan could not find)
        // may bring allocator functions: hook them from now on.
        if (m.executable && !m.path.empty() && m.path.front() == '/') {
          const bool hookedBefore = std::any_of(hooked_.begin(), hooked_.end(), [&](const auto& f) { return f.object == m.path; });
          auto fd = openMappedFile({static_cast<pid_t>(m.pid), m.start, m.end, m.path, 0, m.inode, m.buildId});
          const bool hookedNow = fd && hook(AllocatorObject(std::move(fd), m.path), static_cast<pid_t>(m.pid));
          // Learnt from the mapping, after the process may have called it: an allocator
          // library preloaded by an intermediate command (`-- env LD_PRELOAD=...`), or
          // dlopen'ed; or never, when the process was gone by then.
          if (!hookedBefore && (hookedNow || isAllocatorLibraryName(std::filesystem::path(m.path).filename())) &&
              lateAllocators_.insert(m.path).second)
            summary_.warnings.push_back(
                "allocator library " + common::printable(m.path) + " (pid " + std::to_string(m.pid) + ") was " +
                (hookedNow ? "hooked only once its mapping was reported: the calls it served before then are missing"
                           : "mapped but never hooked (the process was gone when its mapping was reported): the calls "
                             "it served are missing") +
                " (set LD_PRELOAD in heaptrail-record's own environment, or record with --follow-forks)");
        }
        // The kernel's return-probe trampoline: it tells calls in progress from calls
        // whose return was never seen (see still_active in heaptrail.bpf.c).
        if (m.path == "[uprobes]") probes_->setTrampoline(static_cast<pid_t>(m.pid), m.start);
        mappings.push_back(std::move(m));
      },
      [this](schema::ProcessRecord p) { onProcessEvent(std::move(p)); },
  });
  const unwind::UnwindMaps::Batch batch(*unwind_);
  for (auto& m : mappings) {
    addUnwindMapping(m);
    chunk_.addMapping(std::move(m));
  }
}

std::array<uint64_t, HT_KIND_COUNT> Session::lostCounts() const {
  auto lost = probes_->lostCounts();
  if (kernel_) {
    const auto kernel = kernel_->lostCounts();
    for (size_t kind = 0; kind < lost.size(); ++kind) lost[kind] += kernel[kind];
  }
  return lost;
}

void Session::flush(bool sync) {
  const auto lost = lostCounts();
  for (uint32_t kind = 0; kind < HT_KIND_COUNT; ++kind) {
    chunk_.addLost(static_cast<schema::EventKind>(kind), lost[kind] - lostWritten_[kind]);
    lostWritten_[kind] = lost[kind];
  }
  writer_.writeChunk(chunk_);
  if (sync) writer_.sync();
}

void Session::addProcessRecord(uint32_t pid, schema::ProcessEventKind kind, uint32_t parent,
                               std::optional<ExitStatus> status) {
  schema::ProcessRecord p;
  p.timeNs = clockNs();
  p.pid = pid;
  p.kind = kind;
  p.parentPid = parent;
  if (status) {
    p.exitStatusKnown = true;
    p.exitCode = status->exitCode;
    p.signal = status->signal;
    p.coreDumped = status->coreDumped;
  }
  chunk_.addProcessEvent(std::move(p));
}

void Session::recordExit() {
  if (exitRecorded_) return;
  const auto status = target_.pollExit();
  if (!status) return;
  exitRecorded_ = true;
  summary_.exitStatus = status;
  addProcessRecord(static_cast<uint32_t>(target_.pid()), schema::ProcessEventKind::EXIT, 0, status);
}

// At an exec stop, before the new image runs its first instruction: the allocator it
// will use (its executable, or a library it needs that no process hooked yet).
void Session::hookNewImage(pid_t pid) {
  // The old image's return-probe trampoline is gone with it: until the new one is
  // reported, calls in progress are taken as active (still_active in heaptrail.bpf.c)
  // rather than checked against a stale address, which made nested calls count twice.
  probes_->setTrampoline(pid, 0);
  std::error_code ec;
  const std::string proc = "/proc/" + std::to_string(pid);
  const auto exe = std::filesystem::read_symlink(proc + "/exe", ec);
  auto exeFd = openExecutableOf(pid);
  struct stat st {};
  if (ec || !exeFd || ::fstat(exeFd.get(), &st) != 0) return;
  auto it = imageObjects_.find({{st.st_dev, st.st_ino}, environmentValue(pid, "LD_PRELOAD")});
  if (it == imageObjects_.end()) {
    // A shell starts the same few programs over and over: resolved once each.
    AllocatorObjects image = locateAllocatorsForExecutable(proc + "/root" + exe.string(), environmentValue(pid, "LD_PRELOAD"));
    // The executable itself is the file this process runs, not a lookup of its path.
    if (!image.objects.empty()) {
      image.objects.front() = AllocatorObject(std::move(exeFd), exe.string());
      image.objects.front().program = true;
    }
    it = imageObjects_.emplace(std::pair{std::pair{st.st_dev, st.st_ino}, environmentValue(pid, "LD_PRELOAD")},
                               std::move(image)).first;
  }
  for (const AllocatorObject& object : it->second.objects) hook(object, pid);
  // While the new image is held: its tables are ready when its mappings are reported.
  const unwind::UnwindMaps::Batch batch(*unwind_);
  for (const AllocatorObject& object : it->second.objects)
    if (object.isOpen()) unwind_->prepare(object.fd());
}

void Session::stopWorkload(uint64_t now, uint64_t stopRequestedAt, bool grace) {
  if (!terminatedAt_) {
    if (grace && now - stopRequestedAt < kChildGraceNs) return;
    if (target_.signal(SIGTERM)) summary_.workloadTerminated = true;
    terminatedAt_ = now;
  } else if (now - terminatedAt_ >= TargetProcess::kTerminateGraceNs) {
    target_.signal(SIGKILL);
    terminatedAt_ = UINT64_MAX / 2;  // sent once
  }
}

// --follow-forks: new processes get their probes before they run, exits end them.
void Session::followProcesses() {
  auto events = follower_->poll();
  if (std::any_of(events.begin(), events.end(),
                  [](const auto& e) { return e.kind == ForkFollower::Event::Kind::Exit; }))
    drainAll();  // what a process did before it died, and its last mappings, come first
  for (const auto& e : events) {
    const uint32_t pid = static_cast<uint32_t>(e.pid);
    switch (e.kind) {
      case ForkFollower::Event::Kind::Fork:
        probes_->addTarget(e.pid);
        probes_->attachLikeParent(e.pid, e.parent);
        unwind_->copyProcess(e.parent, e.pid);
        watcher_->addTarget(e.pid);
        addProcessRecord(pid, schema::ProcessEventKind::FORK, static_cast<uint32_t>(e.parent));
        follower_->release(e.pid);
        break;
      case ForkFollower::Event::Kind::Exec:
        hookNewImage(e.pid);
        follower_->release(e.pid);
        break;
      case ForkFollower::Event::Kind::Exit:
        if (e.pid == target_.pid()) {
          if (target_.launched()) summary_.exitStatus = e.status;
          exitRecorded_ = true;
        }
        addProcessRecord(pid, schema::ProcessEventKind::EXIT, 0, e.status);
        probes_->removeTarget(e.pid);
        watcher_->removeTarget(e.pid);
        unwind_->removeProcess(e.pid);
        break;
    }
  }
}

RecordSummary Session::run() {
  summary_.output = writer_.path();
  summary_.pid = target_.pid();

  probes_ = std::make_unique<AllocatorProbes>(
      ProbeConfig{options_.minSize, options_.maxSize, options_.stackDepth, options_.ringBufferBytes,
                  options_.releaseStacks, options_.entryProbes ? ProbeSiteMode::Entry : ProbeSiteMode::Cheap,
                  options_.stackMode},
      allocators_.libc);
  if (options_.verbose) {
    std::cerr << "heaptrail-record: BPF program ids";
    for (uint32_t id : probes_->programIds()) std::cerr << " " << id;
    std::cerr << (probes_->usesUprobeMulti() ? " (uprobe_multi links)" : " (one link per probe)") << "\n";
  }
  unwind_ = std::make_unique<unwind::UnwindMaps>(options_.stackMode, probes_->unwindTablesFd(),
                                                 probes_->unwindMappingsFd(), probes_->unwindFilesFd());
  {
    const unwind::UnwindMaps::Batch batch(*unwind_);
    for (const auto& object : allocators_.objects)
      if (object.isOpen()) unwind_->prepare(object.fd());
    // A running process: its mappings are known to the walker before its first event
    // (the trace gets them from the snapshot below, taken once the watcher runs).
    if (!target_.launched()) {
      try {
        for (const auto& m : snapshotMappings(target_.pid(), clockNs())) addUnwindMapping(m);
      } catch (const std::exception&) {
        // Gone or hidden: the attach below says so.
      }
    }
  }
  probes_->addTarget(target_.pid());
  // Events are stamped from here on: the trace starts before the first probe can fire.
  startNs_ = clockNs();
  // Traced before anything is hooked: a process it forks meanwhile is held for us.
  if (options_.followForks) follower_ = std::make_unique<ForkFollower>(target_.pid(), target_.launched());
  if (options_.kernel) {
    kernel_ = std::make_unique<KernelRecording>(options_, stacks_, chunk_, summary_, probes_->targetsMapFd());
    kernel_->setStart(startNs_);
  }
  hookAllocators();
  watcher_ = std::make_unique<ProcessWatcher>(!options_.followForks);
  watcher_->addTarget(target_.pid());
  std::unique_ptr<ring_buffer, decltype(&ring_buffer__free)> ring(
      ring_buffer__new(probes_->ringBufferFd(), &Session::onRingEvent, this, nullptr), ring_buffer__free);
  if (!ring) throw RecordError(std::string("cannot read the BPF ring buffer: ") + std::strerror(errno));
  ring_ = ring.get();
  if (kernel_) kernel_->addTo(ring_);

  if (!target_.launched()) {
    // The watcher is already running, so nothing mapped from here on is missed.
    const unwind::UnwindMaps::Batch batch(*unwind_);
    for (auto& m : snapshotMappings(target_.pid(), startNs_)) {
      addUnwindMapping(m);
      chunk_.addMapping(std::move(m));
    }
  }
  signals_.throwIfRequested();
  // Before the header: a command that cannot run leaves the output path as it was.
  target_.release();
  const std::string allocator =
      allocators_.libc ? allocators_.libc->displayPath : allocators_.objects.front().displayPath;
  writeTraceHeader(writer_, options_, {startNs_, &target_, allocator, hooked_, kernel_.get()});
  chunk_.setEncoding(writer_.encoding());  // events are encoded as they come
  output_.commit();
  if (onStarted_) onStarted_(summary_);

  const uint64_t deadline = options_.durationNs ? startNs_ + options_.durationNs : 0;
  uint64_t lastFlush = startNs_;
  uint64_t stopRequestedAt = 0;
  // The target's exit (its pidfd) or, with --follow-forks, any change in the tree.
  std::array<pollfd, 4> fds = {pollfd{signals_.fd(), POLLIN, 0},
                               pollfd{follower_ ? follower_->fd() : target_.pidfd(), POLLIN, 0},
                               pollfd{ring_buffer__epoll_fd(ring_), POLLIN, 0},
                               pollfd{watcher_->fd(), POLLIN, 0}};
  try {
    while (true) {
      const int ready = ::poll(fds.data(), fds.size(), kPollIntervalMs);
      if (ready < 0 && errno != EINTR) throw RecordError(std::string("poll: ") + std::strerror(errno));
      if (fds[0].revents & POLLIN) {
        fds[0].fd = -1;  // stays readable from now on
        const int sig = signals_.take();
        if (!stopRequestedAt) {
          stopRequestedAt = clockNs();
          summary_.endReason = schema::EndReason::INTERRUPTED;
          // A terminal sends Ctrl-C and hang-ups to the command as well: give it a moment.
          workloadGotTheSignal_ = sig == SIGINT || sig == SIGHUP;
        }
      }
      drainAll();
      const uint64_t now = clockNs();
      if (follower_) {
        followProcesses();
        // With --follow-forks the recording goes on while any process of the tree lives.
        if (follower_->processCount() == 0) {
          drainAll();
          if (!stopRequestedAt) summary_.endReason = schema::EndReason::TARGET_EXITED;
          break;
        }
      } else if (target_.exited()) {
        drainAll();  // the process is gone: everything it did is in the buffers now
        recordExit();
        if (!stopRequestedAt) summary_.endReason = schema::EndReason::TARGET_EXITED;
        break;
      }
      if (deadline && now >= deadline && !stopRequestedAt) {
        stopRequestedAt = now;
        summary_.endReason = schema::EndReason::DURATION;
      }
      if (stopRequestedAt) {
        // Processes the command started (--follow-forks) are left to it.
        if (!target_.launched()) break;
        if (target_.exited()) {
          // Gone since the check above: its end is recorded all the same.
          if (!follower_) {
            drainAll();
            recordExit();
          }
          break;
        }
        // The command lives as long as its recording, which goes on until it is gone.
        stopWorkload(now, stopRequestedAt, workloadGotTheSignal_);
      }
      if (now - lastFlush >= kFlushIntervalNs || chunk_.eventCount() >= kMaxChunkEvents) {
        const bool timed = now - lastFlush >= kFlushIntervalNs;
        flush(timed);
        if (timed) {
          lastFlush = now;
          probes_->forgetExitedThreads();
          if (onProgress_) {
            RecordSummary progress = summary_;
            progress.durationNs = now - startNs_;
            progress.bytesWritten = writer_.bytesWritten();
            for (uint64_t n : lostCounts()) progress.lost = common::saturatingAdd(progress.lost, n);
            onProgress_(progress);
          }
        }
      }
    }
    drainAll();
    flush(false);
  } catch (const std::exception& e) {
    // The file stays valid up to the last complete chunk; try to say why it ends.
    summary_.endReason = schema::EndReason::ERROR;
    summary_.error = e.what();
    if (target_.terminate()) summary_.workloadTerminated = true;
  }

  const uint64_t end = clockNs();
  summary_.durationNs = end - startNs_;
  summary_.stacks = stacks_.size();
  if (options_.verbose)
    std::cerr << "heaptrail-record: " << summary_.deferredStacks
              << " stack walks finished by the recorder (a mapping new to the BPF walker)\n";
  summary_.unwindTables = unwind_->loadedTables();
  summary_.unwindTableBytes = unwind_->loadedTableBytes();
  summary_.unwindMapBytes = unwind_->kernelBytes();
  const auto lost = lostCounts();
  for (uint64_t n : lost) summary_.lost = common::saturatingAdd(summary_.lost, n);
  summary_.lostMappingRecords = watcher_->lostRecords();
  writeTraceFooter(writer_, end, lost, summary_);
  return summary_;
}

}  // namespace

RecordSummary runRecording(const RecordOptions& options, const std::function<void(const RecordSummary&)>& onStarted,
                           const std::function<void(const RecordSummary&)>& onProgress) {
  checkPrivilegesAndKernel();
  if (options.kernel && !options.pid && options.command.empty())
    return runKernelRecording(options, onStarted, onProgress);
  // First, before anything could block: Ctrl-C works from here on (stop_signals.h).
  StopSignals signals;
  LaunchOptions launch;
  if (!options.user.empty()) launch.user = lookupUser(options.user);
  launch.stdoutToStderr = writesToStdout(options);
  TargetProcess target = options.pid ? TargetProcess::attach(*options.pid) : TargetProcess::launch(options.command, launch);
  AllocatorObjects allocators;
  try {
    allocators = options.allocatorObject.empty()
                     ? (target.launched() ? locateAllocatorsForExecutable(target.program(), target.ldPreload())
                                          : locateAllocatorsInProcess(target.pid()))
                     : namedAllocator(options.allocatorObject);
  } catch (const RecordError&) {
    if (target.exited())
      throw RecordError("process " + std::to_string(target.pid()) + " exited before it could be recorded");
    throw;
  }
  signals.throwIfRequested();

  // Abandoned (only what it created is removed) unless the recording starts.
  OutputFile output = OutputFile::open(
      options.output.empty() ? std::filesystem::path("heaptrail-" + std::to_string(target.pid()) + ".htr")
                             : options.output);
  std::optional<schema::TraceWriter> writer;
  try {
    writer.emplace(output.writeFd(), output.path());
  } catch (const schema::TraceError& e) {
    throw RecordError(e.what());
  }
  writer->setInterruptFd(signals.fd());
  Session session(options, std::move(target), std::move(allocators), *writer, output, signals, onStarted, onProgress);
  return session.run();
}

}  // namespace heaptrail::recorder
