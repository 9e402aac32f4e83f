// tools/bench/time_noise.h: the entropy estimates behind issue 13's lower bound on what
// exact nanosecond times cost (BENCHMARKS.md), on sequences whose entropy is known.
#include "tools/bench/time_noise.h"

#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace heaptrail::bench {
namespace {

const Estimate& find(const std::vector<ModelEstimate>& all, const std::string& model, DeltaStream stream,
                     unsigned bits) {
  for (const auto& r : all)
    if (r.model == model && r.stream == stream && r.bits == bits) return r.estimate;
  throw std::runtime_error("no estimate for " + model);
}

TEST(TimeNoise, UniformSymbolsCostTheirBitsAndNoContextHelps) {
  std::mt19937_64 random(7);
  std::vector<uint32_t> symbols(200000);
  std::vector<uint64_t> none(symbols.size(), 0), previous(symbols.size(), 0);
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i] = static_cast<uint32_t>(random() & 0xff);
    if (i > 0) previous[i] = symbols[i - 1] + 1;
  }
  const Estimate marginal = estimateEntropy(none, symbols, 8);
  EXPECT_NEAR(marginal.plugInBits, 8.0, 0.01);
  EXPECT_NEAR(marginal.adaptiveBits, 8.0, 0.02);
  EXPECT_GE(marginal.adaptiveBits, marginal.plugInBits);
  // 256 contexts of ~780 samples: the plug-in fits each context's noise and falls a little
  // below the truth (by ~ contexts * 255 / (2 n ln 2) = 0.24 bits); the adaptive coder pays
  // for learning instead and stays above it.
  const Estimate conditional = estimateEntropy(previous, symbols, 8);
  EXPECT_EQ(conditional.contexts, 257u);
  EXPECT_LT(conditional.plugInBits, 8.0);
  EXPECT_GT(conditional.plugInBits, 7.6);
  EXPECT_GT(conditional.adaptiveBits, 8.0);
}

TEST(TimeNoise, APredictableSequenceCostsNothingGivenItsContext) {
  std::vector<uint32_t> symbols(4096);
  std::vector<uint64_t> none(symbols.size(), 0), previous(symbols.size(), 0);
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i] = i % 16;
    previous[i] = i ? symbols[i - 1] + 1 : 0;
  }
  EXPECT_NEAR(estimateEntropy(none, symbols, 4).plugInBits, 4.0, 1e-9);
  EXPECT_NEAR(estimateEntropy(previous, symbols, 4).plugInBits, 0.0, 1e-3);
  EXPECT_LT(estimateEntropy(previous, symbols, 4).adaptiveBits, 0.1);
}

std::vector<TimedEvent> eventsWithDeltas(const std::vector<uint64_t>& deltas, const std::vector<uint32_t>& kinds) {
  std::vector<TimedEvent> events;
  uint64_t t = 1'000'000'000;
  for (size_t i = 0; i < deltas.size(); ++i) events.push_back({t += deltas[i], 1, kinds[i], 1});
  return events;
}

TEST(TimeNoise, ConstantDeltasHaveNoNoise) {
  const auto results = measureTimeNoise(eventsWithDeltas(std::vector<uint64_t>(5000, 4771), std::vector<uint32_t>(5000, 0)));
  ASSERT_EQ(results.size(), 2 * 12 * noiseModels().size());
  for (const auto& r : results) EXPECT_NEAR(r.estimate.plugInBits, 0.0, 1e-9) << r.model << " k=" << r.bits;
}

TEST(TimeNoise, JitterCostsTheBitsItSpansWhateverTheModel) {
  // Deltas of 1024 ns plus uniform jitter in [0, 256): the low 8 bits are uniform, and
  // nothing else about the events (not even the delta's higher bits: 1024 is a multiple
  // of 256) says anything about them.
  std::mt19937_64 random(11);
  std::vector<uint64_t> deltas(100000);
  std::vector<uint32_t> kinds(deltas.size());
  for (size_t i = 0; i < deltas.size(); ++i) deltas[i] = 1024 + (random() & 0xff), kinds[i] = random() & 1;
  const auto results = measureTimeNoise(eventsWithDeltas(deltas, kinds));
  for (unsigned k = 1; k <= 8; ++k) {
    EXPECT_NEAR(find(results, "none", DeltaStream::Global, k).plugInBits, k, 0.02);
    EXPECT_NEAR(find(results, "none", DeltaStream::Thread, k).plugInBits, k, 0.02);
    EXPECT_NEAR(find(results, "kinds", DeltaStream::Global, k).plugInBits, k, 0.05);
    EXPECT_NEAR(find(results, "high", DeltaStream::Global, k).plugInBits, k, 0.05);
  }
  // 1024..1279 spans 256 values: the low 10 bits hold 8 bits of entropy, not 10.
  EXPECT_NEAR(find(results, "none", DeltaStream::Global, 10).plugInBits, 8.0, 0.02);
}

TEST(TimeNoise, AContextThatPredictsTheLowBitsIsFound) {
  // The low 12 bits depend only on the event's kind; the high bits are random.
  std::mt19937_64 random(13);
  std::vector<uint64_t> deltas(50000);
  std::vector<uint32_t> kinds(deltas.size());
  for (size_t i = 0; i < deltas.size(); ++i) {
    kinds[i] = random() & 1;
    deltas[i] = 4096 * (1 + (random() & 3)) + (kinds[i] ? 9 : 5);
  }
  const auto results = measureTimeNoise(eventsWithDeltas(deltas, kinds));
  EXPECT_NEAR(find(results, "none", DeltaStream::Global, 12).plugInBits, 1.0, 0.01);
  EXPECT_NEAR(find(results, "kinds", DeltaStream::Global, 12).plugInBits, 0.0, 1e-9);
  EXPECT_LT(find(results, "kinds", DeltaStream::Global, 12).adaptiveBits, 0.01);
}

}  // namespace
}  // namespace heaptrail::bench
