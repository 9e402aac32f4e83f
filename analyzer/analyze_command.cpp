// `heaptrail analyze`: replay a trace, report outstanding allocations by stack.
#include <charconv>
#include <filesystem>
#include <memory>
#include <sstream>

#include <boost/program_options.hpp>

#include "analyzer/cli.h"
#include "analyzer/subcommand.h"
#include "analyzer/json_output.h"
#include "analyzer/kernel_frames.h"
#include "analyzer/leak_report.h"
#include "analyzer/replay.h"
#include "analyzer/text_output.h"
#include "analyzer/symbols/unpacked_bundle.h"
#include "schema/trace_error.h"
#include "schema/trace_reader.h"
#include "common/safe_text.h"
#include "common/units.h"

namespace po = boost::program_options;

namespace heaptrail::analyzer {
namespace {

struct AnalyzeOptions {
  std::filesystem::path trace;
  ReplayOptions replay;
  ReportOptions report;
  bool json = false;
  bool symbols = true;
  symbols::SymbolizerOptions symbolOptions;
  std::vector<std::filesystem::path> bundles;
  std::filesystem::path vmlinux;
};

std::string helpText(const po::options_description& visible) {
  std::ostringstream out;
  out << "Usage: heaptrail analyze TRACE [options]\n\n"
      << "Replays a trace and reports the allocations still outstanding at the analysis\n"
      << "point (the end of the recording, or --at), grouped by allocating stack and sorted\n"
      << "by bytes. Ages are measured at the analysis point.\n\n"
      << visible << "\n"
      << "Examples:\n"
      << "  heaptrail analyze app.htr                        leaks at the end, top 10 stacks\n"
      << "  heaptrail analyze app.htr --since 60s            only allocations alive for >= 60 s\n"
      << "  heaptrail analyze app.htr --at 45s --top 20      the state 45 s after the start\n"
      << "  heaptrail analyze app.htr --min-bytes 1M         stacks holding at least 1 MiB\n"
      << "  heaptrail analyze app.htr --pid 4321             one process of a --follow-forks trace\n"
      << "  heaptrail analyze app.htr --sysroot ./device-rootfs --debug-dir ./symbols\n"
      << "  heaptrail analyze app.htr --bundle app.bundle      the device's files, packed by heaptrail-record bundle\n"
      << "  heaptrail analyze app.htr --format json > leaks.json\n"
      << "  heaptrail analyze k.htr --comm nginx --vmlinux ./vmlinux   kernel memory held for nginx\n"
      << "  DEBUGINFOD_URLS=https://debuginfod.debian.net heaptrail analyze app.htr\n"
      << "                                                   fetch missing debug files by build-id\n\n"
      << "Durations take ns, us, ms, s, m or h (default s); sizes take k, M or G (powers of\n"
      << "1024). Unresolved frames print as module+0xoffset with the reason.\n"
      << "Exit status: 0 ok, 1 error, 2 usage error.\n";
  return out.str();
}

uint64_t parseDurationOption(const std::string& name, const std::string& text) {
  const auto v = common::parseDuration(text);
  if (!v) throw UsageError("invalid duration '" + text + "' for --" + name + " (e.g. 60s, 500ms, 5m)");
  return *v;
}

// Returns nullopt after printing help.
std::optional<AnalyzeOptions> parse(const std::vector<std::string>& args, std::ostream& out) {
  AnalyzeOptions o;
  std::string since, at, minBytes, top, format = "text", sysroot, comm, vmlinux;
  long long pid = -1;
  std::vector<std::string> debugDirs, traces, bundles;
  po::options_description visible("Options");
  visible.add_options()
      ("help,h", "show this help")
      ("since", po::value<std::string>(&since), "only allocations outstanding for at least this long at the analysis point")
      ("at", po::value<std::string>(&at), "analyze the state this long after the recording started, not at its end")
      ("top,n", po::value<std::string>(&top), "show the N stacks with the most bytes (default 10, 0: all)")
      ("min-bytes", po::value<std::string>(&minBytes), "hide stacks with fewer outstanding bytes than this")
      ("pid,p", po::value<long long>(&pid), "only this process (traces recorded with --follow-forks hold several)")
      ("comm", po::value<std::string>(&comm), "only processes with a thread of this name (kernel recordings name every thread)")
      ("vmlinux", po::value<std::string>(&vmlinux), "kernel image with DWARF for file:line of kernel frames (default: found by the recorded kernel's build-id under the debug directories)")
      ("format,f", po::value<std::string>(&format), "output format: text (default) or json")
      ("sysroot", po::value<std::string>(&sysroot), "look up the recorded binaries under this directory (a copy of the device's root file system)")
      ("debug-dir", po::value<std::vector<std::string>>(&debugDirs)->composing(), "also look for separate debug files here (.build-id layout); repeatable")
      ("bundle", po::value<std::vector<std::string>>(&bundles)->composing(), "the device's files packed by 'heaptrail-record bundle' (checked by build-id); repeatable")
      ("no-debuginfod", "never ask the debuginfod servers in $DEBUGINFOD_URLS for binaries and debug files missing here")
      ("no-symbols", "do not symbolize: frames print as module+0xoffset");
  const auto vm = parseSubcommandLine(args, visible, traces);
  if (vm.count("help")) {
    out << helpText(visible);
    return std::nullopt;
  }
  if (traces.empty()) throw UsageError("missing the trace file to analyze");
  if (traces.size() > 1) throw UsageError("expected one trace file, got " + std::to_string(traces.size()));
  o.trace = traces[0];
  if (!since.empty()) o.report.sinceNs = parseDurationOption("since", since);
  if (!at.empty()) o.replay.atNs = o.report.atNs = parseDurationOption("at", at);
  if (!top.empty()) {
    uint64_t n = 0;
    const auto [end, ec] = std::from_chars(top.data(), top.data() + top.size(), n);
    if (ec != std::errc() || end != top.data() + top.size())
      throw UsageError("invalid number '" + top + "' for --top");
    o.report.top = n;
  }
  if (!minBytes.empty()) {
    const auto v = common::parseSize(minBytes);
    if (!v) throw UsageError("invalid size '" + minBytes + "' for --min-bytes (e.g. 4096, 64k, 1M)");
    o.report.minBytes = *v;
  }
  if (vm.count("pid")) {
    if (pid <= 0 || pid > 0x7fffffff) throw UsageError("--pid must be a positive process id");
    o.report.pid = static_cast<uint32_t>(pid);
  }
  if (vm.count("comm")) o.report.comm = comm;
  o.vmlinux = vmlinux;
  if (format != "text" && format != "json") throw UsageError("invalid --format '" + format + "': use text or json");
  o.json = format == "json";
  o.symbols = vm.count("no-symbols") == 0;
  o.symbolOptions.sysroot = sysroot;
  o.symbolOptions.debuginfod = vm.count("no-debuginfod") == 0;
  for (const auto& d : debugDirs) o.symbolOptions.debugDirs.emplace_back(d);
  for (const auto& b : bundles) o.bundles.emplace_back(b);
  return o;
}

bool isDirectory(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_directory(dir, ec);
}

}  // namespace

int analyzeMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::optional<AnalyzeOptions> options;
  try {
    options = parse(args, out);
  } catch (const UsageError& e) {
    err << "heaptrail analyze: " << e.what() << " (see heaptrail analyze --help)\n";
    return kExitUsage;
  }
  if (!options) return kExitOk;

  if (options->symbols) {
    std::vector<std::pair<const char*, std::filesystem::path>> dirs;
    if (!options->symbolOptions.sysroot.empty()) dirs.emplace_back("--sysroot", options->symbolOptions.sysroot);
    for (const auto& d : options->symbolOptions.debugDirs) dirs.emplace_back("--debug-dir", d);
    for (const auto& [option, dir] : dirs) {
      if (isDirectory(dir)) continue;
      err << "heaptrail analyze: " << option << " " << dir.string() << ": no such directory\n";
      return kExitError;
    }
  }

  // The bundles are unpacked first and searched like debug directories, before the user's.
  std::vector<std::unique_ptr<symbols::UnpackedBundle>> unpacked;
  if (options->symbols) {
    try {
      for (const auto& b : options->bundles) {
        unpacked.push_back(std::make_unique<symbols::UnpackedBundle>(b));
        for (const auto& note : unpacked.back()->notes()) err << "heaptrail analyze: warning: " << note << "\n";
      }
    } catch (const std::exception& e) {
      err << "heaptrail analyze: " << e.what() << "\n";
      return kExitError;
    }
    std::vector<std::filesystem::path> dirs;
    for (const auto& u : unpacked) dirs.push_back(u->dir());
    dirs.insert(dirs.end(), options->symbolOptions.debugDirs.begin(), options->symbolOptions.debugDirs.end());
    options->symbolOptions.debugDirs = std::move(dirs);
  }

  return runOnTrace("analyze", options->trace.string(), err, [&] {
    schema::TraceReader reader(options->trace);
    Replay replay(options->replay);
    replay.run(reader);

    FrameResolver resolver;
    std::optional<symbols::Symbolizer> symbolizer;
    if (options->symbols) {
      symbolizer.emplace(options->symbolOptions);
      resolver = [&](const symbols::ModuleRef& module, uint64_t offset) { return symbolizer->resolve(module, offset); };
    }
    const auto kernel = KernelFrames::fromHeader(
        reader.header(), {options->vmlinux, options->symbolOptions.debugDirs, options->symbolOptions.sysroot, true,
                          options->symbolOptions.debuginfod});
    LeakReport report = buildReport(replay, options->report, resolver, kernel.get());
    if (kernel) report.warnings.insert(report.warnings.end(), kernel->notes().begin(), kernel->notes().end());
    report.summary.trace = options->trace.string();
    const auto header = reader.header();
    if (header.getTargets().size() > 0) {
      const auto target = header.getTargets()[0];
      report.summary.targetPid = target.getPid();
      for (auto a : target.getCommandLine()) report.summary.targetCommand.emplace_back(a.cStr());
    }

    if (options->json) {
      writeJson(out, report);
      for (const auto& w : report.warnings) err << "heaptrail analyze: warning: " << common::printable(w) << "\n";
    } else {
      writeText(out, report);
    }
    out.flush();
    if (symbolizer && symbolizer->stats().debuginfodFiles > 0)
      err << "heaptrail analyze: " << symbolizer->stats().debuginfodFiles
          << " binaries or debug files came from debuginfod ($DEBUGINFOD_URLS)\n";
    return kExitOk;
  });
}

}  // namespace heaptrail::analyzer
