// Traces written by earlier heaptrails stay readable, with exactly the analysis they
// had: the version-1 fixtures of tests/data/v1 (see its README) against the JSON report
// recorded with them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analyzer/cli.h"
#include "analyzer/convert.h"
#include "schema/trace_reader.h"
#include "tests/support/temp_dir.h"

namespace heaptrail {
namespace {

const std::filesystem::path kV1 = HEAPTRAIL_V1_FIXTURES;
const std::filesystem::path kV2 = HEAPTRAIL_V2_FIXTURES;

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string analyzeJson(const std::string& name, std::vector<std::string> extra = {},
                        const std::filesystem::path& dir = kV1) {
  const std::string path = (dir / (name + ".htr")).string();
  std::vector<std::string> args = {"analyze", path, "--no-symbols", "--top", "0", "--format", "json"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::ostringstream out, err;
  EXPECT_EQ(analyzer::heaptrailMain(args, out, err), 0) << err.str();
  // The report names the trace as given; the expected output was made in the directory.
  std::string json = out.str();
  for (size_t at; (at = json.find(path)) != std::string::npos;) json.replace(at, path.size(), name + ".htr");
  return json;
}

// Every value the expected report has, the report has too (later versions of the report
// may add fields: those are not the trace's business). With a `timeTolerance`, a time (a
// key ending in `_ns`: allocation times, ages, the time of the peak, the end of the trace;
// not the --since given) may differ from the expected one by less than that.
void expectContains(const nlohmann::json& expected, const nlohmann::json& actual, const std::string& where,
                    uint64_t timeTolerance = 0) {
  if (expected.is_object()) {
    ASSERT_TRUE(actual.is_object()) << where;
    for (const auto& [key, value] : expected.items()) {
      ASSERT_TRUE(actual.contains(key)) << where << "." << key;
      const bool time = key.size() > 3 && key.ends_with("_ns") && key != "since_ns" && value.is_number_integer();
      if (time && timeTolerance > 0) {
        ASSERT_TRUE(actual[key].is_number_integer()) << where << "." << key;
        const int64_t difference = actual[key].get<int64_t>() - value.get<int64_t>();
        EXPECT_LT(std::abs(difference), static_cast<int64_t>(timeTolerance))
            << where << "." << key << ": " << actual[key] << " vs exact " << value;
      } else {
        expectContains(value, actual[key], where + "." + key, timeTolerance);
      }
    }
  } else if (expected.is_array()) {
    ASSERT_TRUE(actual.is_array()) << where;
    ASSERT_EQ(expected.size(), actual.size()) << where;
    for (size_t i = 0; i < expected.size(); ++i)
      expectContains(expected[i], actual[i], where + "[" + std::to_string(i) + "]", timeTolerance);
  } else {
    EXPECT_EQ(expected, actual) << where;
  }
}

void expectSameAnalysis(const std::string& actual, const std::filesystem::path& expectedFile) {
  expectContains(nlohmann::json::parse(readFile(expectedFile)), nlohmann::json::parse(actual), "report");
}

class V1Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(V1Fixture, ReadsAsVersion1WithTheSameAnalysis) {
  const std::string name = GetParam();
  schema::TraceReader reader(kV1 / (name + ".htr"));
  EXPECT_EQ(reader.header().getSchemaVersion(), 1u);
  expectSameAnalysis(analyzeJson(name), kV1 / (name + ".json"));
}

// The same recordings in version 2 (exact times) give exactly the same analysis: every
// leak, byte, count and age survives the new encoding.
TEST_P(V1Fixture, Version2OfTheSameTraceGivesTheSameAnalysis) {
  const std::string name = GetParam();
  testing::TempDir dir;
  schema::EncodingOptions exact;
  exact.timeResolutionNs = 1;
  analyzer::convertTrace(kV1 / (name + ".htr"), dir / (name + ".htr"), exact);
  schema::TraceReader reader(dir / (name + ".htr"));
  EXPECT_EQ(reader.header().getSchemaVersion(), schema::CURRENT_SCHEMA_VERSION);
  expectSameAnalysis(analyzeJson(name, {}, dir.path()), kV1 / (name + ".json"));
}

// At the recorder's default time resolution the same recordings give the same leaks,
// bytes, counts and stacks, with every time and age within the resolution of the exact one.
TEST_P(V1Fixture, Version2AtTheDefaultResolutionGivesTheSameAnalysisWithinIt) {
  const std::string name = GetParam();
  testing::TempDir dir;
  schema::EncodingOptions defaults;
  defaults.timeResolutionNs = schema::kDefaultTimeResolutionNs;
  ASSERT_GT(defaults.timeResolutionNs, 1u);
  analyzer::convertTrace(kV1 / (name + ".htr"), dir / (name + ".htr"), defaults);
  expectContains(nlohmann::json::parse(readFile(kV1 / (name + ".json"))),
                 nlohmann::json::parse(analyzeJson(name, {}, dir.path())), "report", defaults.timeResolutionNs);
}

INSTANTIATE_TEST_SUITE_P(TraceVersions, V1Fixture,
                         ::testing::Values("synthetic", "synthetic-kernel", "threads", "cpp_mismatch",
                                           "thread_exit", "fork_leak", "aged", "churn", "jq", "sqlite3"));

// Version-2 traces (the first packed coding) written before the coding of version 3.
class V2Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(V2Fixture, ReadsAsVersion2WithTheSameAnalysis) {
  const std::string name = GetParam();
  schema::TraceReader reader(kV2 / (name + ".htr"));
  EXPECT_EQ(reader.header().getSchemaVersion(), 2u);
  expectSameAnalysis(analyzeJson(name, {}, kV2), kV2 / (name + ".json"));
}

// Rewritten in the current coding (the version-2 fixtures' own time resolution), they
// give exactly the same analysis.
TEST_P(V2Fixture, CurrentCodingOfTheSameTraceGivesTheSameAnalysis) {
  const std::string name = GetParam();
  testing::TempDir dir;
  schema::EncodingOptions options;
  options.timeResolutionNs = schema::TraceReader(kV2 / (name + ".htr")).timeResolutionNs();
  analyzer::convertTrace(kV2 / (name + ".htr"), dir / (name + ".htr"), options);
  schema::TraceReader reader(dir / (name + ".htr"));
  EXPECT_EQ(reader.header().getSchemaVersion(), schema::CURRENT_SCHEMA_VERSION);
  expectSameAnalysis(analyzeJson(name, {}, dir.path()), kV2 / (name + ".json"));
}

INSTANTIATE_TEST_SUITE_P(TraceVersions, V2Fixture,
                         ::testing::Values("synthetic", "synthetic-kernel", "threads", "churn", "cross_threads"));

TEST(TraceVersions, V1AnalysisAtAPointInTime) {
  expectSameAnalysis(analyzeJson("synthetic", {"--at", "3ms"}), kV1 / "synthetic.at3ms.json");
}

// `heaptrail info` says what a trace costs per event and which column dominates, for
// both versions.
TEST(TraceVersions, InfoShowsBytesPerEventAndPerColumn) {
  testing::TempDir dir;
  analyzer::convertTrace(kV1 / "jq.htr", dir / "jq.htr", schema::EncodingOptions{});
  for (const auto& [path, column] : {std::pair{kV1 / "jq.htr", std::string("  timeDelta")},
                                     std::pair{dir / "jq.htr", std::string("  info (kind, size, stack, function): ")}}) {
    std::ostringstream out, err;
    ASSERT_EQ(analyzer::heaptrailMain({"info", path.string()}, out, err), 0) << err.str();
    const std::string text = out.str();
    EXPECT_NE(text.find(" bytes per event\n"), std::string::npos) << text;
    EXPECT_NE(text.find("  by column (bytes per event, each column compressed alone):"), std::string::npos) << text;
    EXPECT_NE(text.find("  address: "), std::string::npos) << text;
    if (path == dir / "jq.htr") {
      EXPECT_NE(text.find(column), std::string::npos) << text;
    }
  }
}

}  // namespace
}  // namespace heaptrail
