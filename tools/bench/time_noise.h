// How many bits of a trace's exact (1 ns) event times are noise: the low k bits of each
// event's time delta, and how well models of their context predict them. Used by
// tools/bench/time_noise.cpp (BENCHMARKS.md, issue 13's lower bounds) and its test.
//
// What the figures mean. For a model (a function giving each event a context from what a
// decoder already knows: earlier events, this event's kind, thread, site, the delta's
// higher bits), `plugInBits` is the empirical conditional entropy H(S | C) of the symbols
// S: by Gibbs' inequality no coder that uses one fixed distribution per context can code
// these very symbols in fewer bits, even with the distributions fitted to them and sent
// for free. It is optimistic for the model (fitted on what it codes: many contexts make
// it fall below the truth), hence safe as a lower estimate. `adaptiveBits` is what a real
// sequential coder with that context reaches (counts with PPM's escape method C, nothing
// sent beforehand): an achievable figure, above the plug-in. Neither proves anything about
// models not tried: bits that are uniform and independent of everything else are
// incompressible by any format, and these figures only show that no model tried finds a
// dependence.
#pragma once

#include <algorithm>
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

// Symbols are < 2^alphabetBits; contexts any 64-bit values.
inline Estimate estimateEntropy(std::span<const uint64_t> contexts, std::span<const uint32_t> symbols,
                                unsigned alphabetBits) {
  Estimate e;
  e.samples = symbols.size();
  if (symbols.empty()) return e;
  const double alphabet = std::ldexp(1.0, static_cast<int>(alphabetBits));
  std::unordered_map<uint64_t, uint32_t> contextIndex;
  std::vector<uint64_t> contextTotal, contextDistinct;
  std::unordered_map<uint64_t, uint64_t> cell;  // (context index, symbol) -> count
  contextIndex.reserve(1024);
  cell.reserve(symbols.size());
  double adaptive = 0;
  for (size_t i = 0; i < symbols.size(); ++i) {
    const auto [it, added] = contextIndex.try_emplace(contexts[i], static_cast<uint32_t>(contextTotal.size()));
    if (added) contextTotal.push_back(0), contextDistinct.push_back(0);
    const uint64_t c = it->second;
    uint64_t& n = cell[(c << 32) | symbols[i]];
    // PPM's method C: a seen symbol n_s / (n + d), a new one d / (n + d) shared equally
    // among the A - d not seen yet (d: distinct symbols seen in this context).
    const double total = static_cast<double>(contextTotal[c]), distinct = static_cast<double>(contextDistinct[c]);
    if (contextTotal[c] == 0) adaptive += std::log2(alphabet);
    else if (n > 0) adaptive -= std::log2(static_cast<double>(n) / (total + distinct));
    else adaptive -= std::log2(distinct / (total + distinct) / (alphabet - distinct));
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
  unsigned bits = 0;  // k: the symbol is the delta's low k bits
  Estimate estimate;
};

// The models tried, by name; each gives an event's context from what precedes it in its
// stream and from the event itself.
inline const std::vector<std::string>& noiseModels() {
  static const std::vector<std::string> models = {
      "none",     // the marginal distribution of the low bits
      "kinds",    // (previous event's kind, this event's kind)
      "thread",   // which thread
      "previous", // the previous delta's low k bits
      "high",     // the delta's other bits (delta >> k, up to 1023): all but the low bits known
      "sites",    // (previous event's site, this event's site): the code path between them
      "window",   // which block of 4096 events: a distribution that drifts over the run
      "combined", // kinds, thread, previous low bits and high bits (up to 15) together
  };
  return models;
}

inline std::vector<ModelEstimate> measureTimeNoise(std::span<const TimedEvent> events, unsigned maxBits = 12) {
  std::vector<ModelEstimate> out;
  for (const DeltaStream stream : {DeltaStream::Global, DeltaStream::Thread}) {
    // Per event with a predecessor in the stream: its delta, and the predecessor's index.
    std::vector<int64_t> delta;
    std::vector<size_t> index, previous;
    std::unordered_map<uint64_t, size_t> lastOfThread;
    std::unordered_map<uint64_t, uint64_t> threadNumber;
    std::vector<uint64_t> threadOf;
    for (size_t i = 0; i < events.size(); ++i) {
      threadOf.push_back(threadNumber.try_emplace(events[i].thread, threadNumber.size()).first->second);
      size_t p = 0;
      bool has = false;
      if (stream == DeltaStream::Global) {
        has = i > 0;
        p = i - (has ? 1 : 0);
      } else {
        const auto it = lastOfThread.find(events[i].thread);
        if (it != lastOfThread.end()) has = true, p = it->second;
        lastOfThread[events[i].thread] = i;
      }
      if (!has) continue;
      delta.push_back(static_cast<int64_t>(events[i].timeNs - events[p].timeNs));
      index.push_back(i);
      previous.push_back(p);
    }
    // Position in `delta` of each event's stream predecessor's own delta (for "previous").
    std::vector<int64_t> positionOf(events.size(), -1);
    for (size_t j = 0; j < index.size(); ++j) positionOf[index[j]] = static_cast<int64_t>(j);

    for (unsigned k = 1; k <= maxBits; ++k) {
      const uint64_t mask = (uint64_t{1} << k) - 1;
      std::vector<uint32_t> symbol(delta.size());
      for (size_t j = 0; j < delta.size(); ++j) symbol[j] = static_cast<uint32_t>(static_cast<uint64_t>(delta[j]) & mask);
      auto high = [&](size_t j, int64_t cap) {
        if (delta[j] < 0) return cap + 1;  // out of order across CPUs (global stream only)
        return std::min<int64_t>(delta[j] >> k, cap);
      };
      auto previousSymbol = [&](size_t j) -> uint64_t {
        const int64_t q = positionOf[previous[j]];
        return q < 0 ? 0 : uint64_t{symbol[static_cast<size_t>(q)]} + 1;
      };
      std::vector<uint64_t> context(delta.size());
      for (const std::string& model : noiseModels()) {
        for (size_t j = 0; j < delta.size(); ++j) {
          const TimedEvent& e = events[index[j]];
          const TimedEvent& before = events[previous[j]];
          uint64_t c = 0;
          if (model == "kinds") c = (uint64_t{before.kind} << 8) | e.kind;
          else if (model == "thread") c = threadOf[index[j]];
          else if (model == "previous") c = previousSymbol(j);
          else if (model == "high") c = static_cast<uint64_t>(high(j, 1023));
          else if (model == "sites") c = before.site * 0x9E3779B97F4A7C15ull ^ e.site;
          else if (model == "window") c = index[j] / 4096;
          else if (model == "combined")
            c = (((((uint64_t{before.kind} << 8) | e.kind) * 4096 + std::min<uint64_t>(threadOf[index[j]], 4095)) * 8192 +
                  previousSymbol(j)) << 5) | static_cast<uint64_t>(high(j, 15));
          context[j] = c;
        }
        out.push_back({model, stream, k, estimateEntropy(context, symbol, k)});
      }
    }
  }
  return out;
}

}  // namespace heaptrail::bench
