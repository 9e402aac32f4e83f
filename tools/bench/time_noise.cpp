// time_noise: how many bits per event of a trace recorded with --time-resolution 1ns are
// noise that no exact format can leave out (BENCHMARKS.md, issue 13). For k = 1..12, the
// low k bits of each event's time delta (since the trace's previous event, and since the
// same thread's previous event), their marginal entropy, and the smallest conditional
// entropy that any of the models in time_noise.h reaches; then zstd -19 on the low 8 bits
// packed one byte per event, a general-purpose compressor as one more model. The last
// line: the largest k-bit figure, per event of the whole trace. See time_noise.h for what
// the figures prove and what they do not.
//
//   time_noise TRACE [--models]     (--models: every model's figures, not only the best)
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <zstd.h>

#include "schema/trace_reader.h"
#include "tools/bench/time_noise.h"

namespace {

using heaptrail::bench::DeltaStream;
using heaptrail::bench::TimedEvent;

// zstd -19 of the low 8 bits of every delta of the stream, in bits per event of the trace.
double zstdBitsPerEvent(const std::vector<TimedEvent>& events, DeltaStream stream) {
  std::vector<uint8_t> bytes;
  std::vector<std::pair<uint64_t, uint64_t>> last;  // (thread, time), few threads
  for (size_t i = 0; i < events.size(); ++i) {
    if (stream == DeltaStream::Global) {
      if (i > 0) bytes.push_back(static_cast<uint8_t>(events[i].timeNs - events[i - 1].timeNs));
      continue;
    }
    bool found = false;
    for (auto& [thread, time] : last)
      if (thread == events[i].thread) {
        bytes.push_back(static_cast<uint8_t>(events[i].timeNs - time));
        time = events[i].timeNs;
        found = true;
        break;
      }
    if (!found) last.emplace_back(events[i].thread, events[i].timeNs);
  }
  std::vector<uint8_t> out(ZSTD_compressBound(bytes.size()));
  const size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 19);
  if (ZSTD_isError(n)) throw std::runtime_error(ZSTD_getErrorName(n));
  return 8.0 * static_cast<double>(n) / static_cast<double>(events.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::strcmp(argv[2], "--models") != 0)) {
    std::fprintf(stderr, "usage: time_noise TRACE [--models]\n"
                         "  TRACE: recorded with heaptrail-record --time-resolution 1ns\n");
    return 2;
  }
  const bool allModels = argc == 3;
  std::vector<TimedEvent> events;
  try {
    heaptrail::schema::TraceReader reader(argv[1]);
    if (reader.timeResolutionNs() != 1) {
      std::fprintf(stderr, "time_noise: %s has times at a resolution of %llu ns; record it with --time-resolution 1ns\n",
                   argv[1], static_cast<unsigned long long>(reader.timeResolutionNs()));
      return 1;
    }
    while (reader.nextChunk()) {
      const auto& c = reader.events();
      for (size_t i = 0; i < c.count(); ++i)
        events.push_back({c.timeNs[i], (uint64_t{c.pid[i]} << 32) | c.tid[i], static_cast<uint32_t>(c.kind[i]),
                          c.stackId[i] ? c.stackId[i] : (uint64_t{1} << 40) | c.function[i]});
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "time_noise: %s\n", e.what());
    return 1;
  }
  if (events.size() < 2) {
    std::fprintf(stderr, "time_noise: %s has fewer than 2 events\n", argv[1]);
    return 1;
  }
  const double total = static_cast<double>(events.size());
  const auto results = heaptrail::bench::measureTimeNoise(events);
  std::printf("events=%zu (bits per symbol; a symbol per event with a predecessor in its stream)\n", events.size());
  if (allModels)
    for (const auto& r : results)
      std::printf("k=%u stream=%s model=%s contexts=%llu plug_in=%.3f adaptive=%.3f\n", r.bits,
                  heaptrail::bench::streamName(r.stream), r.model.c_str(),
                  static_cast<unsigned long long>(r.estimate.contexts), r.estimate.plugInBits,
                  r.estimate.adaptiveBits);
  std::printf("%-3s %-14s %-14s %-34s %s\n", "k", "H global", "H thread", "smallest H(S|C): model, stream",
              "adaptive");
  double bound = 0;
  unsigned boundBits = 0;
  for (unsigned k = 1; k <= 12; ++k) {
    const heaptrail::bench::ModelEstimate* best = nullptr;
    double marginal[2] = {0, 0};
    for (const auto& r : results) {
      if (r.bits != k) continue;
      if (r.model == "none") marginal[r.stream == DeltaStream::Thread] = r.estimate.plugInBits;
      if (!best || r.estimate.plugInBits < best->estimate.plugInBits) best = &r;
    }
    const double perEvent = best->estimate.plugInBits * static_cast<double>(best->estimate.samples) / total;
    if (perEvent > bound) bound = perEvent, boundBits = k;
    std::printf("%-3u %-14.3f %-14.3f %-6.3f %-9s %-18s %.3f\n", k, marginal[0], marginal[1], best->estimate.plugInBits,
                best->model.c_str(), heaptrail::bench::streamName(best->stream), best->estimate.adaptiveBits);
  }
  std::printf("zstd -19 of the low 8 bits, one byte per event: global %.3f, thread %.3f bits per event\n",
              zstdBitsPerEvent(events, DeltaStream::Global), zstdBitsPerEvent(events, DeltaStream::Thread));
  std::printf("noise_bits_per_event=%.3f (k=%u: the smallest conditional entropy of the low k bits over every model "
              "and both streams, per event of the trace)\n",
              bound, boundBits);
  return 0;
}
