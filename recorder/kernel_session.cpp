// `heaptrail-record --kernel` without a process: kernel allocations of the whole machine
// until a signal or --duration.
#include <bpf/libbpf.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "recorder/clock.h"
#include "recorder/kernel_recording.h"
#include "recorder/output_file.h"
#include "recorder/record_error.h"
#include "recorder/recording_session.h"
#include "recorder/stack_table.h"
#include "recorder/stop_signals.h"
#include "recorder/trace_header.h"
#include "schema/trace_error.h"
#include "schema/trace_writer.h"

namespace heaptrail::recorder {
namespace {

constexpr uint64_t kFlushIntervalNs = 1'000'000'000;  // the format promises >= 1 chunk/s
constexpr size_t kMaxChunkEvents = 1 << 13;
constexpr int kPollIntervalMs = 100;

class KernelSession {
 public:
  KernelSession(const RecordOptions& options, schema::TraceWriter& writer)
      : options_(options), writer_(writer), kernel_(options, stacks_, chunk_, summary_, -1) {}

  RecordSummary run(const std::function<void(const RecordSummary&)>& onStarted,
                    const std::function<void(const RecordSummary&)>& onProgress);

 private:
  void flush(bool sync) {
    const auto lost = kernel_.lostCounts();
    for (uint32_t kind = 0; kind < HT_KIND_COUNT; ++kind) {
      chunk_.addLost(static_cast<schema::EventKind>(kind), lost[kind] - lostWritten_[kind]);
      lostWritten_[kind] = lost[kind];
    }
    writer_.writeChunk(chunk_);
    if (sync) writer_.sync();
  }
  void drain() {
    const int n = ring_buffer__consume(ring_.get());
    if (n < 0) throw RecordError(std::string("reading the kernel BPF ring buffer failed: ") + std::strerror(-n));
  }

  const RecordOptions& options_;
  schema::TraceWriter& writer_;
  StackTable stacks_;
  schema::ChunkBuilder chunk_;
  RecordSummary summary_;
  KernelRecording kernel_;
  std::unique_ptr<ring_buffer, decltype(&ring_buffer__free)> ring_{nullptr, ring_buffer__free};
  std::array<uint64_t, HT_KIND_COUNT> lostWritten_{};
};

RecordSummary KernelSession::run(const std::function<void(const RecordSummary&)>& onStarted,
                                 const std::function<void(const RecordSummary&)>& onProgress) {
  summary_.output = writer_.path();
  summary_.pid = 0;
  StopSignals signals;
  ring_.reset(kernel_.makeRing());
  const uint64_t start = clockNs();
  kernel_.setStart(start);
  const std::vector<schema::FunctionRecord> none;
  writeTraceHeader(writer_, options_, {start, nullptr, "", none, &kernel_});
  chunk_.setEncoding(writer_.encoding());
  if (onStarted) onStarted(summary_);

  const uint64_t deadline = options_.durationNs ? start + options_.durationNs : 0;
  uint64_t lastFlush = start;
  std::array<pollfd, 2> fds = {pollfd{signals.fd(), POLLIN, 0}, pollfd{ring_buffer__epoll_fd(ring_.get()), POLLIN, 0}};
  summary_.endReason = schema::EndReason::INTERRUPTED;
  try {
    while (true) {
      const int ready = ::poll(fds.data(), fds.size(), kPollIntervalMs);
      if (ready < 0 && errno != EINTR) throw RecordError(std::string("poll: ") + std::strerror(errno));
      if ((fds[0].revents & POLLIN) && signals.take() != 0) break;
      drain();
      const uint64_t now = clockNs();
      if (deadline && now >= deadline) {
        summary_.endReason = schema::EndReason::DURATION;
        break;
      }
      if (now - lastFlush >= kFlushIntervalNs || chunk_.eventCount() >= kMaxChunkEvents) {
        const bool timed = now - lastFlush >= kFlushIntervalNs;
        flush(timed);
        if (timed) {
          lastFlush = now;
          if (onProgress) {
            RecordSummary progress = summary_;
            progress.durationNs = now - start;
            progress.bytesWritten = writer_.bytesWritten();
            for (uint64_t n : kernel_.lostCounts()) progress.lost += n;
            onProgress(progress);
          }
        }
      }
    }
    drain();
    flush(false);
  } catch (const std::exception& e) {
    summary_.endReason = schema::EndReason::ERROR;
    summary_.error = e.what();
  }

  const uint64_t end = clockNs();
  summary_.durationNs = end - start;
  summary_.stacks = stacks_.size();
  const auto lost = kernel_.lostCounts();
  for (uint64_t n : lost) summary_.lost += n;
  writeTraceFooter(writer_, end, lost, summary_);
  return summary_;
}

}  // namespace

RecordSummary runKernelRecording(const RecordOptions& options,
                                 const std::function<void(const RecordSummary&)>& onStarted,
                                 const std::function<void(const RecordSummary&)>& onProgress) {
  // Created as every trace is (output_file.h); abandoned unless the recording starts.
  OutputFile output =
      OutputFile::open(options.output.empty() ? std::filesystem::path("heaptrail-kernel.htr") : options.output);
  std::optional<schema::TraceWriter> writer;
  try {
    writer.emplace(output.writeFd(), output.path());
  } catch (const schema::TraceError& e) {
    throw RecordError(e.what());
  }
  KernelSession session(options, *writer);
  return session.run([&](const RecordSummary& started) {
    output.commit();
    if (onStarted) onStarted(started);
  }, onProgress);
}

}  // namespace heaptrail::recorder
