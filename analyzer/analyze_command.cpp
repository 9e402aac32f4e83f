// `heaptrail analyze`: replay a trace, report outstanding allocations by stack.
// `heaptrail diff`: the same for two traces, compared stack by stack.
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <memory>
#include <fstream>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

#include "analyzer/cli.h"
#include "analyzer/subcommand.h"
#include "analyzer/json_output.h"
#include "analyzer/kernel_frames.h"
#include "analyzer/leak_report.h"
#include "analyzer/progress_line.h"
#include "analyzer/replay.h"
#include "analyzer/report/diff.h"
#include "analyzer/report/folded.h"
#include "analyzer/report/html.h"
#include "analyzer/report/metric.h"
#include "analyzer/report/pprof.h"
#include "analyzer/suppressions.h"
#include "analyzer/text_output.h"
#include "analyzer/symbols/unpacked_bundle.h"
#include "schema/record_readers.h"
#include "schema/trace_error.h"
#include "schema/trace_reader.h"
#include "common/safe_text.h"
#include "common/units.h"

namespace po = boost::program_options;

namespace heaptrail::analyzer {
namespace {

enum class Format { Text, Json, Folded, Pprof, Html };

enum class Mode { Analyze, Diff };

struct AnalyzeOptions {
  Mode mode = Mode::Analyze;
  std::vector<std::filesystem::path> traces;  // one; two for diff (base, new)
  report::DiffOptions diff;
  ReplayOptions replay;
  ReportOptions report;
  Format format = Format::Text;
  std::string output;  // -o; empty: standard output
  report::Metric metric = report::Metric::InuseBytes;
  Suppressions suppressions;
  bool quiet = false;
  bool progress = false;  // stderr is this process's terminal
  bool symbols = true;
  symbols::SymbolizerOptions symbolOptions;
  std::vector<std::filesystem::path> bundles;
  std::filesystem::path vmlinux;
};

std::string diffHelpText(const po::options_description& visible) {
  std::ostringstream out;
  out << "Usage: heaptrail diff BASE.htr NEW.htr [options]\n\n"
      << "Analyzes two traces (e.g. before and after a fix, or two versions) and compares\n"
      << "their outstanding allocations stack by stack. Stacks are matched by their\n"
      << "symbolized frames (function names; module+offset where unknown), since addresses\n"
      << "differ between runs. Stacks that grew come first, largest growth first, then those\n"
      << "that shrank or are gone. --since, --at, --pid, --min-bytes (of the change) and\n"
      << "--top (per direction) apply as in analyze, to both traces.\n\n"
      << visible << "\n"
      << "Formats (--format): text (default), json, or folded: 'root;...;leaf BASE NEW' per\n"
      << "stack, the input of flamegraph.pl's differential flame graphs.\n\n"
      << "Examples:\n"
      << "  heaptrail diff before.htr after.htr              did the fix remove the leak?\n"
      << "  heaptrail diff v1.htr v2.htr --since 30s --top 20\n"
      << "  heaptrail diff v1.htr v2.htr --format json > diff.json\n"
      << "  heaptrail diff v1.htr v2.htr --format folded | flamegraph.pl > diff.svg\n\n"
      << "Exit status: 0 ok, 1 error, 2 usage error.\n";
  return out.str();
}

std::string helpText(const po::options_description& visible) {
  std::ostringstream out;
  out << "Usage: heaptrail analyze TRACE [options]\n\n"
      << "Replays a trace and reports the allocations still outstanding at the analysis\n"
      << "point (the end of the recording, or --at), grouped by allocating stack and sorted\n"
      << "by bytes. Ages are measured at the analysis point.\n\n"
      << visible << "\n"
      << "Formats (--format): text (default) and json list the top stacks; folded writes one\n"
      << "line per stack 'root;...;leaf VALUE' for flamegraph.pl, speedscope or inferno; pprof\n"
      << "writes a gzipped profile.proto for `go tool pprof` (needs -o); html writes one\n"
      << "self-contained page with a flame graph, memory over time and the leak table.\n"
      << "folded, pprof and html include every stack unless --top is given.\n\n"
      << "Suppressions: allocations the C library, libstdc++ and the dynamic loader keep for\n"
      << "the life of the process are left out (and counted) by default; see\n"
      << "--list-default-suppressions. --suppressions FILE adds LeakSanitizer-style rules,\n"
      << "one 'leak:PATTERN' per line, matching a function, module or source file of any\n"
      << "frame ('*' any text, '^'/'$' anchors).\n\n"
      << "--growth ranks stacks by how steadily their outstanding bytes grew over the\n"
      << "recording: the slope of a least-squares fit over up to 32 time windows, weighted by\n"
      << "the share of windows in which they grew. A leak grows in most windows; a cache that\n"
      << "fills once grows in a few and then stays flat.\n\n"
      << "Examples:\n"
      << "  heaptrail analyze app.htr                        leaks at the end, top 10 stacks\n"
      << "  heaptrail analyze app.htr --since 60s            only allocations alive for >= 60 s\n"
      << "  heaptrail analyze app.htr --at 45s --top 20      the state 45 s after the start\n"
      << "  heaptrail analyze app.htr --min-bytes 1M         stacks holding at least 1 MiB\n"
      << "  heaptrail analyze app.htr --pid 4321             one process of a --follow-forks trace\n"
      << "  heaptrail analyze app.htr --sysroot ./device-rootfs --debug-dir ./symbols\n"
      << "  heaptrail analyze app.htr --bundle app.bundle      the device's files, packed by heaptrail-record bundle\n"
      << "  heaptrail analyze app.htr --format json > leaks.json\n"
      << "  heaptrail analyze app.htr --format folded | flamegraph.pl > leaks.svg\n"
      << "  heaptrail analyze app.htr --format folded --metric alloc-count > allocs.folded\n"
      << "  heaptrail analyze app.htr --format pprof -o app.pb.gz && go tool pprof -top app.pb.gz\n"
      << "  heaptrail analyze app.htr --format html -o app.html\n"
      << "  heaptrail analyze app.htr --growth               stacks that grew steadily first\n"
      << "  heaptrail analyze app.htr --suppressions lsan.supp --no-default-suppressions\n"
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
std::optional<AnalyzeOptions> parse(const std::vector<std::string>& args, std::ostream& out, Mode mode) {
  AnalyzeOptions o;
  o.mode = mode;
  const bool diff = mode == Mode::Diff;
  std::string since, at, minBytes, top, format = "text", sysroot, comm, vmlinux, output, metric = "bytes";
  std::vector<std::string> suppressionFiles;
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
      ("format,f", po::value<std::string>(&format), diff ? "output format: text (default), json or folded" : "output format: text (default), json, folded, pprof or html")
      ("output,o", po::value<std::string>(&output), "write the report to this file instead of standard output (required for pprof)")
      ("metric", po::value<std::string>(&metric), "value of folded stacks: bytes (outstanding, default), count (outstanding allocations), alloc-bytes or alloc-count (everything allocated up to the analysis point)");
  if (!diff) visible.add_options()("growth", "rank stacks by how steadily their outstanding bytes grew, not by bytes");
  visible.add_options()
      ("suppressions", po::value<std::vector<std::string>>(&suppressionFiles)->composing(), "leave out stacks matching this LeakSanitizer-style file (leak:PATTERN lines); repeatable")
      ("no-default-suppressions", "do not leave out the C runtime's lifetime allocations (NSS, locale, TLS, stdio buffers, ...)")
      ("list-default-suppressions", "print the built-in suppressions as a suppression file and exit")
      ("sysroot", po::value<std::string>(&sysroot), "look up the recorded binaries under this directory (a copy of the device's root file system)")
      ("debug-dir", po::value<std::vector<std::string>>(&debugDirs)->composing(), "also look for separate debug files here (.build-id layout); repeatable")
      ("bundle", po::value<std::vector<std::string>>(&bundles)->composing(), "the device's files packed by 'heaptrail-record bundle' (checked by build-id); repeatable")
      ("no-debuginfod", "never ask the debuginfod servers in $DEBUGINFOD_URLS for binaries and debug files missing here")
      ("no-symbols", "do not symbolize: frames print as module+0xoffset")
      ("quiet,q", "no progress line on the terminal while reading a long trace");
  const auto vm = parseSubcommandLine(args, visible, traces);
  if (vm.count("help")) {
    out << (diff ? diffHelpText(visible) : helpText(visible));
    return std::nullopt;
  }
  if (vm.count("list-default-suppressions")) {
    out << Suppressions::defaultsText();
    return std::nullopt;
  }
  if (diff) {
    if (traces.size() != 2) throw UsageError("expected two trace files (BASE NEW), got " + std::to_string(traces.size()));
  } else {
    if (traces.empty()) throw UsageError("missing the trace file to analyze");
    if (traces.size() > 1) throw UsageError("expected one trace file, got " + std::to_string(traces.size()));
  }
  for (const auto& t : traces) o.traces.emplace_back(t);
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
  if (format == "text") o.format = Format::Text;
  else if (format == "json") o.format = Format::Json;
  else if (format == "folded") o.format = Format::Folded;
  else if (format == "pprof") o.format = Format::Pprof;
  else if (format == "html") o.format = Format::Html;
  else throw UsageError("invalid --format '" + format + "': use text, json, folded, pprof or html");
  if (diff && (o.format == Format::Pprof || o.format == Format::Html))
    throw UsageError("diff writes text, json or folded, not " + format);
  if (vm.count("output") && output.empty()) throw UsageError("--output needs a file name");
  o.output = output == "-" ? "" : output;
  if (o.format == Format::Pprof && o.output.empty())
    throw UsageError("--format pprof writes a binary file: give it with -o FILE");
  const auto m = report::parseMetric(metric);
  if (!m) throw UsageError("invalid --metric '" + metric + "': use bytes, count, alloc-bytes or alloc-count");
  o.metric = *m;
  if (vm.count("metric") && o.format != Format::Folded)
    throw UsageError("--metric applies to --format folded (pprof and html carry every metric)");
  // The graphical formats show every stack unless asked for fewer.
  if (o.format != Format::Text && o.format != Format::Json && top.empty()) o.report.top = 0;
  if (vm.count("growth")) o.report.rankBy = RankBy::Growth;
  else if (report::isAllocMetric(o.metric)) o.report.rankBy = RankBy::Allocated;
  o.report.includeFreedStacks = o.format == Format::Pprof || o.format == Format::Html || report::isAllocMetric(o.metric);
  o.report.timeline = o.format == Format::Html;
  if (diff) {
    // Each trace keeps every stack; the comparison applies --top and --min-bytes to the changes.
    o.diff.top = top.empty() ? 10 : o.report.top;
    o.diff.minBytes = o.report.minBytes;
    o.report.top = 0;
    o.report.minBytes = 0;
  }
  try {
    if (!vm.count("no-default-suppressions")) o.suppressions = Suppressions::defaults();
    for (const auto& file : suppressionFiles) o.suppressions.addFile(file);
  } catch (const SuppressionError& e) {
    throw UsageError(e.what());
  }
  o.quiet = vm.count("quiet") > 0;
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

LeakReport analyzeTrace(const std::filesystem::path& trace, const AnalyzeOptions& options, const FrameResolver& resolver,
                        std::ostream& err) {
  schema::TraceReader reader(trace);
  ProgressLine progress(err, "heaptrail: reading " + trace.filename().string(), options.progress && !options.quiet);
  ReplayOptions replayOptions = options.replay;
  replayOptions.progress = [&](uint64_t read, uint64_t size, uint64_t events) { progress.update(read, size, events); };
  Replay replay(replayOptions);
  replay.run(reader);
  progress.finish();
  const auto kernel = KernelFrames::fromHeader(
      reader.header(), {options.vmlinux, options.symbolOptions.debugDirs, options.symbolOptions.sysroot, true,
                        options.symbolOptions.debuginfod});
  LeakReport report = buildReport(replay, options.report, resolver, kernel.get());
  if (kernel) report.warnings.insert(report.warnings.end(), kernel->notes().begin(), kernel->notes().end());
  report.summary.trace = trace.string();
  const auto header = reader.header();
  if (header.getTargets().size() > 0) {
    const auto target = header.getTargets()[0];
    report.summary.targetPid = target.getPid();
    for (auto a : target.getCommandLine()) report.summary.targetCommand.push_back(schema::boundedText(a));
  }
  return report;
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, Mode mode) {
  const std::string command = mode == Mode::Diff ? "diff" : "analyze";
  std::optional<AnalyzeOptions> options;
  try {
    options = parse(args, out, mode);
  } catch (const UsageError& e) {
    err << "heaptrail " << command << ": " << e.what() << " (see heaptrail " << command << " --help)\n";
    return kExitUsage;
  }
  if (!options) return kExitOk;
  options->progress = &err == &std::cerr && ProgressLine::stderrIsTerminal();

  if (options->symbols) {
    std::vector<std::pair<const char*, std::filesystem::path>> dirs;
    if (!options->symbolOptions.sysroot.empty()) dirs.emplace_back("--sysroot", options->symbolOptions.sysroot);
    for (const auto& d : options->symbolOptions.debugDirs) dirs.emplace_back("--debug-dir", d);
    for (const auto& [option, dir] : dirs) {
      if (isDirectory(dir)) continue;
      err << "heaptrail " << command << ": " << option << " " << dir.string() << ": no such directory\n";
      return kExitError;
    }
  }

  // The bundles are unpacked first and searched like debug directories, before the user's.
  std::vector<std::unique_ptr<symbols::UnpackedBundle>> unpacked;
  if (options->symbols) {
    try {
      for (const auto& b : options->bundles) {
        unpacked.push_back(std::make_unique<symbols::UnpackedBundle>(b));
        for (const auto& note : unpacked.back()->notes()) err << "heaptrail " << command << ": warning: " << note << "\n";
      }
    } catch (const std::exception& e) {
      err << "heaptrail " << command << ": " << e.what() << "\n";
      return kExitError;
    }
    std::vector<std::filesystem::path> dirs;
    for (const auto& u : unpacked) dirs.push_back(u->dir());
    dirs.insert(dirs.end(), options->symbolOptions.debugDirs.begin(), options->symbolOptions.debugDirs.end());
    options->symbolOptions.debugDirs = std::move(dirs);
  }

  // One symbolizer for both traces of a diff: they mostly share their binaries.
  FrameResolver resolver;
  std::optional<symbols::Symbolizer> symbolizer;
  if (options->symbols) {
    symbolizer.emplace(options->symbolOptions);
    resolver = [&](const symbols::ModuleRef& module, uint64_t offset) { return symbolizer->resolve(module, offset); };
  }
  options->report.suppressions = &options->suppressions;
  std::vector<LeakReport> reports;
  for (const auto& trace : options->traces) {
    const int code = runOnTrace(command, trace.string(), err, [&] {
      reports.push_back(analyzeTrace(trace, *options, resolver, err));
      return kExitOk;
    });
    if (code != kExitOk) return code;
  }
  const std::string where = mode == Mode::Diff ? options->traces[1].string() : options->traces[0].string();
  return runOnTrace(command, where, err, [&] {
    std::ofstream file;
    if (!options->output.empty()) {
      file.open(options->output, std::ios::binary | std::ios::trunc);
      if (!file)
        throw std::runtime_error("cannot create " + options->output + ": " + std::strerror(errno));
    }
    std::ostream& sink = options->output.empty() ? out : file;
    if (mode == Mode::Diff) {
      const auto diff = report::diffReports(reports[0], reports[1], options->diff);
      switch (options->format) {
        case Format::Json: report::writeDiffJson(sink, diff); break;
        case Format::Folded: report::writeDiffFolded(sink, reports[0], reports[1], options->metric); break;
        default: report::writeDiffText(sink, diff); break;
      }
    } else {
      const LeakReport& report = reports[0];
      switch (options->format) {
        case Format::Text: writeText(sink, report); break;
        case Format::Json: writeJson(sink, report); break;
        case Format::Folded: report::writeFolded(sink, report, options->metric); break;
        case Format::Pprof: report::writePprof(sink, report); break;
        case Format::Html: report::writeHtml(sink, report); break;
      }
      // Only text carries the warnings in what it writes for a person to read.
      if (options->format != Format::Text || !options->output.empty())
        for (const auto& w : report.warnings) err << "heaptrail analyze: warning: " << common::printable(w) << "\n";
    }
    sink.flush();
    if (file.is_open()) {
      file.close();
      if (!file) throw std::runtime_error("cannot write " + options->output + ": " + std::strerror(errno));
    }
    if (!sink) throw std::runtime_error("cannot write the report: " + std::string(std::strerror(errno)));
    if (symbolizer && symbolizer->stats().debuginfodFiles > 0)
      err << "heaptrail " << command << ": " << symbolizer->stats().debuginfodFiles
          << " binaries or debug files came from debuginfod ($DEBUGINFOD_URLS)\n";
    return kExitOk;
  });
}

}  // namespace

int analyzeMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return run(args, out, err, Mode::Analyze);
}

int diffMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return run(args, out, err, Mode::Diff);
}

}  // namespace heaptrail::analyzer
