// time_noise: how many bits per event exact (1 ns) times carry beyond the 1 ms times, for a
// trace recorded with --time-resolution 1ns: a lower bound, as far as the models in
// time_noise.h go, on what the 1 ns trace costs any exact format on top of the 1 ms trace
// (BENCHMARKS.md, issue 13). Prints the whole delta's conditional entropy under each
// model (both delta streams), the low k bits' entropy alone and given the delta's other
// bits, and last the smallest figure of any model per event of the trace. See
// time_noise.h for what the figures prove and what they do not.
//
//   time_noise TRACE
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "schema/trace_reader.h"
#include "tools/bench/time_noise.h"

int main(int argc, char** argv) {
  using heaptrail::bench::DeltaStream;
  if (argc != 2) {
    std::fprintf(stderr, "usage: time_noise TRACE\n"
                         "  TRACE: recorded with heaptrail-record --time-resolution 1ns\n");
    return 2;
  }
  std::vector<heaptrail::bench::TimedEvent> events;
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
  const auto noise = heaptrail::bench::measureTimeNoise(events);
  const double total = static_cast<double>(events.size());
  auto perEvent = [&](const heaptrail::bench::Estimate& e, double bits) {
    return bits * static_cast<double>(e.samples) / total;
  };
  std::printf("events=%zu\n\nwhole delta given the 1 ms times, bits per event: H(S|C) / adaptive coder\n", events.size());
  std::printf("%-9s %-20s %-20s %s\n", "model", "global delta", "thread delta", "contexts (global)");
  const heaptrail::bench::ModelEstimate *best = nullptr, *bestCoder = nullptr;
  for (const auto& g : noise.wholeDelta) {
    if (!best || perEvent(g.estimate, g.estimate.plugInBits) < perEvent(best->estimate, best->estimate.plugInBits))
      best = &g;
    if (!bestCoder ||
        perEvent(g.estimate, g.estimate.adaptiveBits) < perEvent(bestCoder->estimate, bestCoder->estimate.adaptiveBits))
      bestCoder = &g;
    if (g.stream != DeltaStream::Global) continue;
    for (const auto& t : noise.wholeDelta)
      if (t.stream == DeltaStream::Thread && t.model == g.model)
        std::printf("%-9s %6.3f / %-11.3f %6.3f / %-11.3f %llu\n", g.model.c_str(),
                    perEvent(g.estimate, g.estimate.plugInBits), perEvent(g.estimate, g.estimate.adaptiveBits),
                    perEvent(t.estimate, t.estimate.plugInBits), perEvent(t.estimate, t.estimate.adaptiveBits),
                    static_cast<unsigned long long>(g.estimate.contexts));
  }
  std::printf("\nlow k bits of the global delta, bits per symbol: alone / given the delta's other bits\n");
  for (unsigned k = 1; k <= 12; ++k) {
    double alone = 0, given = 0;
    for (const auto& r : noise.lowBits)
      if (r.bits == k) (r.model == "none" ? alone : given) = r.estimate.plugInBits;
    std::printf("k=%-2u %6.3f / %.3f\n", k, alone, given);
  }
  std::printf("\nnoise_bits_per_event=%.3f (model %s, %s delta: the smallest H(S|C) of any model)\n",
              perEvent(best->estimate, best->estimate.plugInBits), best->model.c_str(),
              heaptrail::bench::streamName(best->stream));
  std::printf("coder_bits_per_event=%.3f (model %s, %s delta: the smallest adaptive coder of any model)\n",
              perEvent(bestCoder->estimate, bestCoder->estimate.adaptiveBits), bestCoder->model.c_str(),
              heaptrail::bench::streamName(bestCoder->stream));
  return 0;
}
