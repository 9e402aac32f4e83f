// How many bits per event exact (1 ns) event times carry beyond what times at 1 ms carry,
// under every model of their context we tried: a lower bound on what a trace at
// --time-resolution 1ns costs any exact format on top of the trace at 1 ms, as far as
// those models go. Used by tools/bench/time_noise.cpp (BENCHMARKS.md, issue 13) and its
// test.
//
// What the figures mean. The symbol is each event's whole time delta in ns (since the
// trace's previous event, as the encoder stores it, or since the same thread's previous
// event), so that a clock that moves in steps (this VM's moves by ~10 ns) or deltas that
// cluster are counted as what they are: only the values that occur, with their
// frequencies, cost bits. The low k bits of the delta alone are not a fair measure: they
// look uniform (k bits) even when the rest of the delta determines them.
//
// Every model's context includes what the 1 ms times say about this delta: how many
// milliseconds the time moved, and whether the previous event lay in the last 1/16 ms of
// its millisecond (only then can "same millisecond" rule out a delta of a few us).
// `plugInBits` is the empirical conditional entropy H(S | C): by Gibbs' inequality no coder
// that uses one fixed distribution per context can code these very symbols in fewer
// bits, even with the distributions fitted to them and sent for free. It is optimistic
// for the model (fitted on what it codes: many contexts with few events each make it fall
// below the truth), so it errs on the safe side for a lower bound. `adaptiveBits` is what
// a real sequential coder with that context reaches (counts with PPM's escape method C;
// a value new to its context is coded by the escape and Elias gamma): an achievable
// figure. Neither proves anything about models not tried.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace heaptrail::bench {

struct Estimate {
  double plugInBits = 0;    // H(S | C) of the empirical distribution, bits per symbol
  double adaptiveBits = 0;  // sequential (PPM method C) code length, bits per symbol
  uint64_t contexts = 0;
  uint64_t samples = 0;
};

// Bits of the Elias gamma code of v + 1: a code for any value, for values new to a context.
inline double eliasGammaBits(uint64_t v) {
  const uint64_t x = v == ~uint64_t{0} ? v : v + 1;
  return 2.0 * static_cast<double>(std::bit_width(x) - 1) + 1.0;
}

// H(S | C) and a sequential code length over (context, symbol) pairs. `alphabetBits`:
// symbols are < 2^alphabetBits and a new one is coded uniformly among those not seen yet
// in its context; 0: any 64-bit value, a new one coded with Elias gamma.
inline Estimate estimateEntropy(std::span<const uint64_t> contexts, std::span<const uint64_t> symbols,
                                unsigned alphabetBits = 0) {
  Estimate e;
  e.samples = symbols.size();
  if (symbols.empty()) return e;
  const double alphabet = std::ldexp(1.0, static_cast<int>(alphabetBits));
  std::unordered_map<uint64_t, uint32_t> contextIndex;
  std::vector<uint64_t> contextTotal, contextDistinct;
  struct PairHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& p) const {
      return std::hash<uint64_t>()(p.first * 0x9E3779B97F4A7C15ull ^ p.second);
    }
  };
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint64_t, PairHash> cell;  // (context, symbol) -> count
  contextIndex.reserve(1024);
  cell.reserve(symbols.size());
  double adaptive = 0;
  for (size_t i = 0; i < symbols.size(); ++i) {
    const auto [it, added] = contextIndex.try_emplace(contexts[i], static_cast<uint32_t>(contextTotal.size()));
    if (added) contextTotal.push_back(0), contextDistinct.push_back(0);
    const uint64_t c = it->second;
    uint64_t& n = cell[{c, symbols[i]}];
    // PPM's method C: a seen symbol n_s / (n + d), a new one d / (n + d) times the cost of
    // naming it (d: distinct symbols seen in this context).
    const double total = static_cast<double>(contextTotal[c]), distinct = static_cast<double>(contextDistinct[c]);
    const double naming = alphabetBits ? std::log2(alphabet - distinct) : eliasGammaBits(symbols[i]);
    if (contextTotal[c] == 0) adaptive += naming;
    else if (n > 0) adaptive -= std::log2(static_cast<double>(n) / (total + distinct));
    else adaptive += naming - std::log2(distinct / (total + distinct));
    if (n == 0) ++contextDistinct[c];
    ++n;
    ++contextTotal[c];
  }
  // n H(S|C) = sum_c n_c log n_c - sum_{c,s} n_cs log n_cs
  double sum = 0;
  for (const uint64_t n : contextTotal) sum += static_cast<double>(n) * std::log2(static_cast<double>(n));
  for (const auto& [key, n] : cell) sum -= static_cast<double>(n) * std::log2(static_cast<double>(n));
  const double count = static_cast<double>(symbols.size());
  e.plugInBits = std::max(0.0, sum / count);
  e.adaptiveBits = adaptive / count;
  e.contexts = contextTotal.size();
  return e;
}

// One event as the measurement needs it: `thread` and `site` are any ids (a thread's
// (pid, tid), a stack or function id), `kind` the event kind.
struct TimedEvent {
  uint64_t timeNs = 0;
  uint64_t thread = 0;
  uint32_t kind = 0;
  uint64_t site = 0;
};

// Which delta the symbols come from: the time since the previous event of the trace (what
// the encoder stores) or since the previous event of the same thread.
enum class DeltaStream { Global, Thread };

inline const char* streamName(DeltaStream s) { return s == DeltaStream::Global ? "global" : "thread"; }

struct ModelEstimate {
  std::string model;
  DeltaStream stream = DeltaStream::Global;
  unsigned bits = 0;  // the delta's low `bits` bits; 0: the whole delta
  Estimate estimate;
};

// The models tried for the whole delta, by name. Each context is the model's own plus the
// 1 ms times' (the millisecond step and whether the previous event was in the last 1/16 ms
// of its millisecond).
inline const std::vector<std::string>& noiseModels() {
  static const std::vector<std::string> models = {
      "ms",        // nothing else: the delta's distribution given the 1 ms times
      "kinds",     // (previous event's kind, this event's kind)
      "thread",    // which thread
      "previous",  // the stream's previous delta, to 2 significant bits (~4 buckets per octave)
      "sites",     // (previous event's site, this event's site): the code path between them
      "window",    // which block of 4096 events: a distribution that drifts over the run
      "combined",  // kinds, thread, previous delta's bucket and sites together
  };
  return models;
}

// The delta rounded to its 2 leading bits (0..3 exact): a bucket of similar magnitude.
inline uint64_t magnitudeBucket(uint64_t v) {
  const int width = std::bit_width(v);
  return width <= 2 ? v : (static_cast<uint64_t>(width) << 1) | ((v >> (width - 2)) & 1);
}

struct TimeNoise {
  std::vector<ModelEstimate> wholeDelta;  // every model, both streams
  std::vector<ModelEstimate> lowBits;     // the global delta's low k bits, k = 1..maxBits: alone ("none")
                                          // and given the delta's other bits ("high", up to 1023)
  uint64_t events = 0;
};

inline TimeNoise measureTimeNoise(std::span<const TimedEvent> events, uint64_t millisecondNs = 1'000'000,
                                  unsigned maxBits = 12) {
  TimeNoise out;
  out.events = events.size();
  if (events.empty()) return out;
  const uint64_t origin = events.front().timeNs;  // any origin: the recorder's is the trace's start
  auto millisecond = [&](size_t i) { return (events[i].timeNs - origin) / millisecondNs; };
  std::unordered_map<uint64_t, uint64_t> threadNumber;
  std::vector<uint64_t> threadOf;
  for (const auto& e : events) threadOf.push_back(threadNumber.try_emplace(e.thread, threadNumber.size()).first->second);

  for (const DeltaStream stream : {DeltaStream::Global, DeltaStream::Thread}) {
    // Per event with a predecessor in the stream: its delta, and the predecessor's index.
    std::vector<uint64_t> delta;  // two's complement: negative across CPUs in the global stream
    std::vector<size_t> index, previous;
    std::unordered_map<uint64_t, size_t> lastOfThread;
    for (size_t i = 0; i < events.size(); ++i) {
      size_t p = i - 1;
      if (stream == DeltaStream::Thread) {
        const auto [it, first] = lastOfThread.try_emplace(events[i].thread, i);
        if (first) continue;
        p = it->second;
        it->second = i;
      } else if (i == 0) {
        continue;
      }
      delta.push_back(events[i].timeNs - events[p].timeNs);
      index.push_back(i);
      previous.push_back(p);
    }
    std::vector<int64_t> positionOf(events.size(), -1);
    for (size_t j = 0; j < index.size(); ++j) positionOf[index[j]] = static_cast<int64_t>(j);
    auto previousBucket = [&](size_t j) -> uint64_t {
      const int64_t q = positionOf[previous[j]];
      return q < 0 ? 0 : 1 + magnitudeBucket(delta[static_cast<size_t>(q)]);
    };
    // What the 1 ms times say: the millisecond step (0..3 and more) from the previous event of
    // the trace, and whether that event was in the last 1/16 ms of its millisecond.
    auto coarse = [&](size_t i) -> uint64_t {
      const uint64_t step = i ? std::min<uint64_t>(millisecond(i) - millisecond(i - 1), 3) : 0;
      const bool late = i && (events[i - 1].timeNs - origin) % millisecondNs >= millisecondNs - millisecondNs / 16;
      return step * 2 + late;
    };
    std::vector<uint64_t> context(delta.size());
    for (const std::string& model : noiseModels()) {
      for (size_t j = 0; j < delta.size(); ++j) {
        const size_t i = index[j];
        const TimedEvent& e = events[i];
        const TimedEvent& before = events[previous[j]];
        const uint64_t sites = (before.site * 0x9E3779B97F4A7C15ull) ^ (e.site * 0xC2B2AE3D27D4EB4Full);
        const uint64_t kinds = (uint64_t{before.kind} << 8) | e.kind;
        uint64_t c = 0;
        if (model == "kinds") c = kinds;
        else if (model == "thread") c = threadOf[i];
        else if (model == "previous") c = previousBucket(j);
        else if (model == "sites") c = sites;
        else if (model == "window") c = i / 4096;
        else if (model == "combined")
          c = sites ^ ((kinds << 20 | std::min<uint64_t>(threadOf[i], 1023) << 8 | previousBucket(j)) * 0xFF51AFD7ED558CCDull);
        context[j] = c * 8 + coarse(i);
      }
      out.wholeDelta.push_back({model, stream, 0, estimateEntropy(context, delta)});
    }
    if (stream != DeltaStream::Global) continue;
    std::vector<uint64_t> symbol(delta.size());
    for (unsigned k = 1; k <= maxBits; ++k) {
      const uint64_t mask = (uint64_t{1} << k) - 1;
      for (size_t j = 0; j < delta.size(); ++j) symbol[j] = delta[j] & mask;
      std::fill(context.begin(), context.end(), 0);
      out.lowBits.push_back({"none", stream, k, estimateEntropy(context, symbol, k)});
      for (size_t j = 0; j < delta.size(); ++j)
        context[j] = static_cast<int64_t>(delta[j]) < 0 ? 1024 : std::min<uint64_t>(delta[j] >> k, 1023);
      out.lowBits.push_back({"high", stream, k, estimateEntropy(context, symbol, k)});
    }
  }
  return out;
}

}  // namespace heaptrail::bench
