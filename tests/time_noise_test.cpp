// tools/bench/time_noise.h: the entropy estimates behind issue 13's lower bound on what
// exact nanosecond times cost (BENCHMARKS.md), on sequences whose entropy is known.
#include "tools/bench/time_noise.h"

#include <random>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

namespace heaptrail::bench {
namespace {

const Estimate& find(const std::vector<ModelEstimate>& all, const std::string& model, DeltaStream stream,
                     unsigned bits = 0) {
  for (const auto& r : all)
    if (r.model == model && r.stream == stream && r.bits == bits) return r.estimate;
  throw std::runtime_error("no estimate for " + model);
}

TEST(TimeNoise, UniformSymbolsCostTheirBitsAndNoContextHelps) {
  std::mt19937_64 random(7);
  std::vector<uint64_t> symbols(200000);
  std::vector<uint64_t> none(symbols.size(), 0), previous(symbols.size(), 0);
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i] = random() & 0xff;
    if (i > 0) previous[i] = symbols[i - 1] + 1;
  }
  const Estimate marginal = estimateEntropy(none, symbols, 8);
  EXPECT_NEAR(marginal.plugInBits, 8.0, 0.01);
  EXPECT_NEAR(marginal.adaptiveBits, 8.0, 0.02);
  EXPECT_GE(marginal.adaptiveBits, marginal.plugInBits);
  // 256 contexts of ~780 symbols: the plug-in fits each context's noise and falls a little
  // below the truth (by ~ contexts * 255 / (2 n ln 2) = 0.24 bits); the adaptive coder pays
  // for learning instead and stays above it.
  const Estimate conditional = estimateEntropy(previous, symbols, 8);
  EXPECT_EQ(conditional.contexts, 257u);
  EXPECT_LT(conditional.plugInBits, 8.0);
  EXPECT_GT(conditional.plugInBits, 7.6);
  EXPECT_GT(conditional.adaptiveBits, 8.0);
  // Any 64-bit values: the same entropy; new values cost their Elias gamma code once.
  const Estimate unbounded = estimateEntropy(none, symbols);
  EXPECT_NEAR(unbounded.plugInBits, 8.0, 0.01);
  EXPECT_NEAR(unbounded.adaptiveBits, 8.0, 0.05);
}

TEST(TimeNoise, APredictableSequenceCostsNothingGivenItsContext) {
  std::vector<uint64_t> symbols(4096);
  std::vector<uint64_t> none(symbols.size(), 0), previous(symbols.size(), 0);
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i] = i % 16;
    previous[i] = i ? symbols[i - 1] + 1 : 0;
  }
  EXPECT_NEAR(estimateEntropy(none, symbols, 4).plugInBits, 4.0, 1e-9);
  EXPECT_NEAR(estimateEntropy(previous, symbols, 4).plugInBits, 0.0, 1e-3);
  EXPECT_LT(estimateEntropy(previous, symbols, 4).adaptiveBits, 0.1);
}

TEST(TimeNoise, EliasGammaCodesAnyValue) {
  EXPECT_EQ(eliasGammaBits(0), 1.0);
  EXPECT_EQ(eliasGammaBits(1), 3.0);
  EXPECT_EQ(eliasGammaBits(2), 3.0);
  EXPECT_EQ(eliasGammaBits(3), 5.0);
  EXPECT_EQ(eliasGammaBits(~uint64_t{0}), 127.0);
}

std::vector<TimedEvent> eventsWithDeltas(const std::vector<uint64_t>& deltas, const std::vector<uint32_t>& kinds,
                                         const std::vector<uint64_t>& threads = {}) {
  std::vector<TimedEvent> events;
  uint64_t t = 1'000'000'000;
  for (size_t i = 0; i < deltas.size(); ++i)
    events.push_back({t += deltas[i], threads.empty() ? 1 : threads[i], kinds[i], 1});
  return events;
}

TEST(TimeNoise, ConstantDeltasHaveNoNoise) {
  // 4771 ns apart: 1 ms holds 209 or 210 of them, which the 1 ms context tells apart.
  const auto noise =
      measureTimeNoise(eventsWithDeltas(std::vector<uint64_t>(5000, 4771), std::vector<uint32_t>(5000, 0)));
  EXPECT_EQ(noise.events, 5000u);
  ASSERT_EQ(noise.wholeDelta.size(), 2 * noiseModels().size());
  for (const auto& r : noise.wholeDelta) EXPECT_NEAR(r.estimate.plugInBits, 0.0, 1e-9) << r.model;
  for (const auto& r : noise.lowBits) EXPECT_NEAR(r.estimate.plugInBits, 0.0, 1e-9) << r.model << " k=" << r.bits;
}

TEST(TimeNoise, JitterCostsItsBitsWhateverTheModel) {
  // Deltas of 1024 ns plus uniform jitter in [0, 256) ns: 8 bits that nothing about the
  // events predicts. The low k bits are uniform too, and for k <= 8 independent of the
  // delta's other bits (1024 is a multiple of 256).
  std::mt19937_64 random(11);
  std::vector<uint64_t> deltas(100000);
  std::vector<uint32_t> kinds(deltas.size());
  for (size_t i = 0; i < deltas.size(); ++i) deltas[i] = 1024 + (random() & 0xff), kinds[i] = random() & 1;
  const auto noise = measureTimeNoise(eventsWithDeltas(deltas, kinds));
  // The plug-in fits each context's sample a little (the more contexts, the lower: 25
  // windows of 4096 events, or kind pairs x delta buckets x 1 ms contexts), never above 8.
  for (const std::string model : {"ms", "kinds", "thread", "previous", "sites", "window", "combined"}) {
    EXPECT_LE(find(noise.wholeDelta, model, DeltaStream::Global).plugInBits, 8.0) << model;
    EXPECT_GT(find(noise.wholeDelta, model, DeltaStream::Global).plugInBits, 7.75) << model;
  }
  // The adaptive coder pays for learning 256 values in each 1 ms context.
  EXPECT_GT(find(noise.wholeDelta, "ms", DeltaStream::Global).adaptiveBits, 8.0);
  EXPECT_LT(find(noise.wholeDelta, "ms", DeltaStream::Global).adaptiveBits, 8.3);
  for (unsigned k = 1; k <= 8; ++k) {
    EXPECT_NEAR(find(noise.lowBits, "none", DeltaStream::Global, k).plugInBits, k, 0.02);
    EXPECT_NEAR(find(noise.lowBits, "high", DeltaStream::Global, k).plugInBits, k, 0.05);
  }
  // 1024..1279 spans 256 values: the low 10 bits hold 8 bits, not 10, and the low 12 bits
  // given the rest (nothing: always 0) the same 8.
  EXPECT_NEAR(find(noise.lowBits, "none", DeltaStream::Global, 10).plugInBits, 8.0, 0.02);
  EXPECT_NEAR(find(noise.lowBits, "high", DeltaStream::Global, 12).plugInBits, 8.0, 0.02);
}

TEST(TimeNoise, ADeltaThatTheContextPredictsIsFound) {
  // The delta depends only on the event's kind, or only on its thread (kept apart: the
  // global delta sees two threads' events interleaved, the thread delta does not).
  std::mt19937_64 random(13);
  std::vector<uint64_t> deltas(50000), threads(deltas.size());
  std::vector<uint32_t> kinds(deltas.size());
  for (size_t i = 0; i < deltas.size(); ++i) {
    kinds[i] = random() & 1;
    deltas[i] = kinds[i] ? 5009 : 3005;
  }
  const auto byKind = measureTimeNoise(eventsWithDeltas(deltas, kinds));
  EXPECT_NEAR(find(byKind.wholeDelta, "ms", DeltaStream::Global).plugInBits, 1.0, 0.05);
  EXPECT_NEAR(find(byKind.wholeDelta, "kinds", DeltaStream::Global).plugInBits, 0.0, 1e-9);
  EXPECT_LT(find(byKind.wholeDelta, "kinds", DeltaStream::Global).adaptiveBits, 0.01);

  // Two threads take turns: thread 1's events exactly 7000 ns apart, thread 2's 3500 ns
  // later plus up to 255 ns of jitter. The global delta carries the jitter on every event,
  // the thread delta on thread 2's only.
  uint64_t t = 0;
  std::vector<TimedEvent> events;
  for (size_t i = 0; i < 20000; ++i) {
    events.push_back({t, 1, 0, 1});
    events.push_back({t + 3500 + (random() & 0xff), 2, 0, 2});
    t += 7000;
  }
  const auto byThread = measureTimeNoise(events);
  // Thread 2's delta is 7000 + its jitter - the previous jitter: ~8.7 bits, thread 1's 0;
  // without knowing the thread, a mixture of both (~5.4 bits).
  EXPECT_GT(find(byThread.wholeDelta, "thread", DeltaStream::Global).plugInBits, 7.5);
  EXPECT_NEAR(find(byThread.wholeDelta, "thread", DeltaStream::Thread).plugInBits, 4.36, 0.1);
  EXPECT_NEAR(find(byThread.wholeDelta, "ms", DeltaStream::Thread).plugInBits, 5.36, 0.1);
}

}  // namespace
}  // namespace heaptrail::bench
