// The report formats on real recordings (needs root): exact bytes per function of
// samples/leaky in folded stacks and in pprof read back by `go tool pprof`, suppressions on
// the sample and on a Debian program (getent's NSS and locale allocations), growth ranking
// on samples/growth.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "analyzer/cli.h"
#include "tests/analyzer/chromium.h"
#include "tests/analyzer/leak_checks.h"
#include "tests/support/bpf_required.h"
#include "tests/support/run_command.h"
#include "tests/support/source_markers.h"
#include "tests/support/temp_dir.h"

namespace heaptrail::testing {
namespace {

using Json = nlohmann::json;

struct Output {
  int code = -1;
  std::string out, err;
};

Output analyze(std::vector<std::string> args) {
  Output o;
  std::ostringstream out, err;
  args.insert(args.begin(), "analyze");
  o.code = analyzer::heaptrailMain(args, out, err);
  o.out = out.str();
  o.err = err.str();
  return o;
}

// Records `argv` once per test program run; empty path when recording failed.
class Recordings {
 public:
  static std::filesystem::path get(const std::string& name, const std::vector<std::string>& argv) {
    static Recordings instance;
    auto it = instance.traces_.find(name);
    if (it != instance.traces_.end()) return it->second;
    const auto trace = *instance.dir_ / (name + ".htr");
    std::vector<std::string> record = {HEAPTRAIL_RECORD_BIN, "-o", trace.string(), "--"};
    record.insert(record.end(), argv.begin(), argv.end());
    const auto r = runCommand(record);
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return instance.traces_[name] = r.exitCode == 0 ? trace : std::filesystem::path();
  }

 private:
  std::unique_ptr<TempDir> dir_ = std::make_unique<TempDir>();
  std::map<std::string, std::filesystem::path> traces_;
};

std::filesystem::path leakyTrace() { return Recordings::get("leaky", {LEAKY_BIN}); }

// leaky's leaks by the function that called the allocator (two of them in leak_memalign).
std::map<std::string, uint64_t> expectedLeafBytes() {
  std::map<std::string, uint64_t> bytes;
  for (const auto& e : leakyLeaks()) bytes[e.function] += e.bytes;
  return bytes;
}

TEST(ReportEndToEnd, FoldedHasEveryLeakOfLeakyWithExactBytes) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  const auto trace = leakyTrace();
  ASSERT_FALSE(trace.empty());
  const auto r = analyze({trace.string(), "--format", "folded"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::map<std::string, uint64_t> leaf;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    const std::string stack = line.substr(0, space);
    const uint64_t value = std::stoull(line.substr(space + 1));
    if (stack.find(";main;") == std::string::npos && stack.rfind("main;", 0) != 0) continue;  // not the sample's
    leaf[stack.substr(stack.rfind(';') + 1)] += value;
    if (stack.find("make_record") != std::string::npos) {
      EXPECT_NE(stack.find(";main;leak_in_loop;make_record"), std::string::npos) << "root first: " << stack;
    }
  }
  EXPECT_EQ(leaf, expectedLeafBytes()) << r.out;
}

TEST(ReportEndToEnd, PprofOfLeakyReadsBackInGoToolPprofWithExactBytesPerFunction) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  if (::access("/usr/bin/go", X_OK) != 0) GTEST_SKIP() << "go (Debian golang-go) is not installed: tools/setup.sh installs it";
  const auto trace = leakyTrace();
  ASSERT_FALSE(trace.empty());
  TempDir dir;
  const auto profile = dir / "leaky.pb.gz";
  const auto r = analyze({trace.string(), "--format", "pprof", "-o", profile.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto top = [&](const std::string& index) {
    const auto p = runCommand({"/usr/bin/go", "tool", "pprof", "-top", "-unit=B", "-nodecount=1000", "-sample_index=" + index,
                               profile.string()});
    EXPECT_EQ(p.exitCode, 0) << p.err;
    std::map<std::string, std::pair<uint64_t, uint64_t>> rows;  // function -> flat, cum
    std::istringstream in(p.out);
    std::string line;
    bool table = false;
    while (std::getline(in, line)) {
      if (line.find("flat%") != std::string::npos) {
        table = true;
        continue;
      }
      std::istringstream f(line);
      std::string flat, a, b, cum, c, name;
      if (!table || !(f >> flat >> a >> b >> cum >> c)) continue;
      std::getline(f >> std::ws, name);
      rows[name] = {std::stoull(flat), std::stoull(cum)};  // "49152B" and "0" both parse
    }
    return std::make_pair(rows, p.out);
  };
  const auto [inuse, inuseText] = top("inuse_space");
  for (const auto& [function, bytes] : expectedLeafBytes()) {
    ASSERT_TRUE(inuse.count(function)) << function << "\n" << inuseText;
    EXPECT_EQ(inuse.at(function).first, bytes) << function << "\n" << inuseText;
  }
  EXPECT_EQ(inuse.at("leak_in_loop"), std::make_pair(uint64_t{0}, uint64_t{20020})) << inuseText;
  const auto [allocated, allocatedText] = top("alloc_space");
  EXPECT_EQ(allocated.at("churn").first, 100u * 3003) << "freed blocks count in alloc_space\n" << allocatedText;
  EXPECT_EQ(inuse.count("churn"), 0u) << inuseText;
}

// The HTML report of leaky in headless Chromium: after its scripts ran, the flame graph
// has every leaking function with its exact bytes, the summary the trace's totals; a
// screenshot of it is left in the build directory for a person to look at.
TEST(ReportEndToEnd, HtmlOfLeakyShowsEveryLeakInChromium) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  if (!haveChromium()) GTEST_SKIP() << "chromium is not installed: tools/setup.sh installs it";
  const auto trace = leakyTrace();
  ASSERT_FALSE(trace.empty());
  TempDir dir;
  const auto html = dir / "leaky.html";
  const auto r = analyze({trace.string(), "--format", "html", "-o", html.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto json = analyze({trace.string(), "--format", "json"});
  const Json summary = Json::parse(json.out).at("summary");
  const auto dom = chromiumDom(html, dir / "profile");
  ASSERT_EQ(dom.exitCode, 0) << dom.err;
  EXPECT_NE(dom.out.find("data-rendered=\"yes\""), std::string::npos) << dom.out;
  EXPECT_EQ(dom.out.find("data-script-errors"), std::string::npos) << dom.out;
  for (const auto& [function, bytes] : expectedLeafBytes())
    EXPECT_NE(dom.out.find("data-name=\"" + function + "\" data-value=\"" + std::to_string(bytes) + "\""), std::string::npos)
        << function << " " << bytes << "\n" << dom.out;
  EXPECT_NE(dom.out.find("data-name=\"leak_in_loop\" data-value=\"20020\""), std::string::npos);
  EXPECT_NE(dom.out.find("data-name=\"all\" data-value=\"" + std::to_string(summary.at("matching_bytes").get<uint64_t>()) + "\""),
            std::string::npos) << "the root holds every outstanding byte";
  EXPECT_NE(dom.out.find("id=\"total-outstanding\">" + std::to_string(summary.at("outstanding_bytes").get<uint64_t>()) + " bytes"),
            std::string::npos);
  EXPECT_NE(dom.out.find("id=\"lost-events\">none<"), std::string::npos);
  EXPECT_NE(dom.out.find("class=\"outstanding\""), std::string::npos) << "memory over time drawn";
  EXPECT_NE(dom.out.find("class=\"analysis\""), std::string::npos) << "the analysis point marked";

  std::filesystem::create_directories(SCREENSHOT_DIR);
  const auto png = std::filesystem::path(SCREENSHOT_DIR) / "leaky.png";
  std::filesystem::remove(png);
  const auto shot = chromiumScreenshot(html, dir / "profile", png);
  EXPECT_EQ(shot.exitCode, 0) << shot.err;
  EXPECT_GT(std::filesystem::exists(png) ? std::filesystem::file_size(png) : 0, 10000u) << png;
}

TEST(ReportEndToEnd, SuppressionFileLeavesOutAStackOfTheSampleAndCountsIt) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  const auto trace = leakyTrace();
  ASSERT_FALSE(trace.empty());
  TempDir dir;
  {
    std::ofstream supp(dir / "app.supp");
    supp << "# the records are kept on purpose\nleak:^make_record$\n";
  }
  const auto r = analyze({trace.string(), "--format", "json", "--top", "0", "--suppressions", (dir / "app.supp").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json doc = Json::parse(r.out);
  uint64_t fromFile = 0;
  for (const auto& u : doc.at("summary").at("suppressions_used")) {
    if (u.at("origin") != (dir / "app.supp").string()) continue;
    EXPECT_EQ(u.at("pattern"), "leak:^make_record$");
    EXPECT_EQ(u.at("groups"), 1u);
    fromFile += u.at("bytes").get<uint64_t>();
  }
  EXPECT_EQ(fromFile, 20020u) << r.out;
  for (const auto& leak : doc.at("leaks"))
    for (const auto& f : leak.at("frames")) EXPECT_NE(f.at("function"), "make_record");

  const auto missing = analyze({trace.string(), "--suppressions", (dir / "nope.supp").string()});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("cannot read suppression file"), std::string::npos) << missing.err;
}

// getent looks a user up through NSS, after setlocale: the C library's lifetime
// allocations that heaptrack hides too.
TEST(ReportEndToEnd, DefaultSuppressionsHideGetentsNssAndLocaleAllocations) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  const auto trace = Recordings::get("getent", {"/usr/bin/getent", "passwd", "root"});
  ASSERT_FALSE(trace.empty());
  const auto all = analyze({trace.string(), "--format", "json", "--top", "0", "--no-default-suppressions"});
  const auto hidden = analyze({trace.string(), "--format", "json", "--top", "0"});
  ASSERT_EQ(all.code, 0) << all.err;
  ASSERT_EQ(hidden.code, 0) << hidden.err;
  const Json a = Json::parse(all.out), h = Json::parse(hidden.out);
  const auto isRuntime = [](const Json& leak) {
    for (const auto& f : leak.at("frames")) {
      if (!f.at("function").is_string()) continue;
      const std::string fn = f.at("function");
      if (fn.rfind("__nss_", 0) == 0 || fn.rfind("_nl_", 0) == 0 || fn == "_IO_file_doallocate") return true;
    }
    return false;
  };
  uint64_t runtimeGroups = 0, runtimeBytes = 0;
  for (const auto& leak : a.at("leaks"))
    if (isRuntime(leak)) {
      ++runtimeGroups;
      runtimeBytes += leak.at("bytes").get<uint64_t>();
    }
  EXPECT_GE(runtimeGroups, 3u) << "NSS modules, locale data, stdout's buffer\n" << all.out;
  for (const auto& leak : h.at("leaks")) EXPECT_FALSE(isRuntime(leak)) << leak.dump();
  const auto& s = h.at("summary");
  EXPECT_GE(s.at("suppressed_groups").get<uint64_t>(), runtimeGroups);
  EXPECT_GE(s.at("suppressed_bytes").get<uint64_t>(), runtimeBytes);
  EXPECT_EQ(a.at("summary").at("suppressed_groups"), 0u);
  // Suppressed and shown add up to everything outstanding.
  uint64_t shown = 0;
  for (const auto& leak : h.at("leaks")) shown += leak.at("bytes").get<uint64_t>();
  EXPECT_EQ(shown + s.at("suppressed_bytes").get<uint64_t>(), s.at("matching_bytes").get<uint64_t>());
  const auto text = analyze({trace.string()});
  EXPECT_NE(text.out.find("  suppressed:           " + std::to_string(s.at("suppressed_bytes").get<uint64_t>()) + " bytes in "),
            std::string::npos) << text.out;
}

TEST(ReportEndToEnd, GrowthRankingPutsTheRealLeakBeforeTheCache) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  const auto trace = Recordings::get("growth", {std::string(SAMPLES_BUILD_DIR) + "/growth"});
  ASSERT_FALSE(trace.empty());
  const auto first = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {trace.string(), "--format", "json", "--top", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = analyze(args);
    EXPECT_EQ(r.code, 0) << r.err;
    const Json doc = Json::parse(r.out);
    std::vector<std::pair<std::string, uint64_t>> order;
    for (const auto& leak : doc.at("leaks")) {
      const auto& frames = leak.at("frames");
      const std::string fn = !frames.empty() && frames.at(0).at("function").is_string() ? frames.at(0).at("function").get<std::string>() : "";
      if (fn == "warm_cache" || fn == "handle_request") order.emplace_back(fn, leak.at("bytes").get<uint64_t>());
    }
    return order;
  };
  const auto byBytes = first({});
  ASSERT_EQ(byBytes.size(), 2u);
  EXPECT_EQ(byBytes[0], std::make_pair(std::string("warm_cache"), uint64_t{64 * 1024}));
  EXPECT_EQ(byBytes[1], std::make_pair(std::string("handle_request"), uint64_t{60 * 256}));
  const auto byGrowth = first({"--growth"});
  ASSERT_EQ(byGrowth.size(), 2u);
  EXPECT_EQ(byGrowth[0].first, "handle_request");
  EXPECT_EQ(byGrowth[1].first, "warm_cache");
}

// The same program with and without one leak: the diff shows that leak and nothing else.
TEST(ReportEndToEnd, DiffOfARunWithAndWithoutALeakShowsExactlyThatLeak) {
  HEAPTRAIL_REQUIRE_BPF_OR_SKIP();
  const std::string program = std::string(SAMPLES_BUILD_DIR) + "/fix_check";
  const auto leaking = Recordings::get("fix_check", {program});
  const auto fixed = Recordings::get("fix_check_fixed", {program, "fixed"});
  ASSERT_FALSE(leaking.empty());
  ASSERT_FALSE(fixed.empty());
  const auto diff = [&](const std::vector<std::string>& extra) {
    std::ostringstream out, err;
    std::vector<std::string> args = {"diff", leaking.string(), fixed.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    Output o;
    o.code = analyzer::heaptrailMain(args, out, err);
    o.out = out.str();
    o.err = err.str();
    return o;
  };
  const auto json = diff({"--format", "json", "--no-default-suppressions"});
  ASSERT_EQ(json.code, 0) << json.err;
  const Json doc = Json::parse(json.out);
  EXPECT_EQ(doc.at("grown").size(), 0u) << json.out;
  ASSERT_EQ(doc.at("shrunk").size(), 1u) << json.out;
  const auto& gone = doc.at("shrunk").at(0);
  EXPECT_EQ(gone.at("delta_bytes"), -4321);
  EXPECT_EQ(gone.at("base_bytes"), 4321u);
  EXPECT_EQ(gone.at("new_bytes"), 0u);
  EXPECT_EQ(gone.at("delta_count"), -1);
  EXPECT_EQ(gone.at("frames").at(0).at("function"), "open_session");
  EXPECT_EQ(gone.at("frames").at(0).at("line"), markerLine(std::string(SAMPLES_SOURCE_DIR) + "/fix_check.c", "ALLOC:session"));
  EXPECT_GE(doc.at("unchanged").get<uint64_t>(), 1u) << "build_table's 2000 bytes are in both";

  // Reversed, the leak is what grew; text and folded say the same.
  const auto text = diff({"--no-default-suppressions"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("Shrank or gone:\n\n-4321 bytes, -1 allocations (4321 -> 0 bytes, 1 -> 0 allocations)\n    #0 open_session "),
            std::string::npos) << text.out;
  std::ostringstream out, err;
  ASSERT_EQ(analyzer::heaptrailMain({"diff", fixed.string(), leaking.string(), "--format", "folded"}, out, err), 0) << err.str();
  std::istringstream lines(out.str());
  std::string line;
  size_t changed = 0;
  while (std::getline(lines, line)) {
    unsigned long long a = 0, b = 0;
    const auto second = line.rfind(' '), first = line.rfind(' ', second - 1);
    a = std::stoull(line.substr(first + 1, second - first - 1));
    b = std::stoull(line.substr(second + 1));
    if (a == b) continue;
    ++changed;
    EXPECT_EQ(a, 0u) << line;
    EXPECT_EQ(b, 4321u) << line;
    EXPECT_NE(line.find(";main;open_session "), std::string::npos) << line;
  }
  EXPECT_EQ(changed, 1u) << out.str();
  EXPECT_EQ(diff({"only-one.htr"}).code, 2);
}

}  // namespace
}  // namespace heaptrail::testing
