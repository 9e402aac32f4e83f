// `heaptrail info`: what a trace holds, without analyzing leaks.
#include <ctime>
#include <map>
#include <filesystem>
#include <sstream>

#include <boost/program_options.hpp>

#include "analyzer/cli.h"
#include "analyzer/subcommand.h"
#include "common/hex.h"
#include "common/safe_text.h"
#include "common/saturating.h"
#include "analyzer/replay.h"
#include "analyzer/trace_size.h"
#include "schema/record_readers.h"
#include "schema/trace_error.h"
#include "schema/trace_reader.h"
#include "common/units.h"

namespace po = boost::program_options;

namespace heaptrail::analyzer {
namespace {

std::string wallClock(uint64_t realtimeNs) {
  const time_t seconds = static_cast<time_t>(realtimeNs / 1000000000ull);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char ms[16];
  std::snprintf(ms, sizeof ms, ".%03llu UTC", static_cast<unsigned long long>(realtimeNs / 1000000ull % 1000));
  return std::string(buf) + ms;
}

std::string endReasonName(schema::EndReason reason) {
  switch (reason) {
    case schema::EndReason::TARGET_EXITED: return "every target exited";
    case schema::EndReason::INTERRUPTED: return "interrupted (signal)";
    case schema::EndReason::DURATION: return "--duration elapsed";
    case schema::EndReason::ERROR: return "error";
  }
  return "unknown";
}

// Everything a trace says is printed through this: a crafted trace must not be able to
// send control sequences to the terminal (forge lines, set the title, clear the screen).
std::string safe(const std::string& text) { return common::printable(text); }
std::string safe(capnp::Text::Reader text) { return common::printable(schema::boundedText(text)); }

std::string sizeOrNone(uint64_t v, const char* none) { return v == 0 ? std::string(none) : common::formatBytes(v); }

void printInfo(std::ostream& out, schema::TraceReader& reader, const Replay& replay) {
  const auto h = reader.header();
  const auto& stats = replay.stats();
  const uint64_t start = h.getStartTimeNs();
  out << "trace:            " << safe(reader.path().string()) << " (" << reader.fileSize() << " bytes)\n";
  out << "format:           schema version " << h.getSchemaVersion() << ", recorder " << safe(h.getRecorderVersion()) << "\n";
  for (auto t : h.getTargets()) {
    out << "target:           pid " << t.getPid() << (t.getStartedByRecorder() ? " (started by the recorder):" : " (attached):");
    for (auto a : t.getCommandLine()) out << " " << safe(a);
    out << "\n";
  }
  out << "host:             " << safe(h.getHostname()) << ", kernel " << safe(h.getKernelRelease()) << ", "
      << safe(h.getMachine()) << ", page size " << h.getPageSize() << "\n";
  const auto anchor = h.getWallClockAnchor();
  const uint64_t startWall = anchor.getRealtimeNs() + (start - anchor.getClockNs());
  out << "started:          " << wallClock(startWall) << " (monotonic clock " << start << " ns)\n";
  const auto& footer = replay.recordingEnd();
  const uint64_t end = footer ? std::max(footer->endTimeNs, stats.lastTimeNs) : stats.lastTimeNs;
  out << "duration:         " << common::formatDuration(end - std::min(end, start))
      << (footer ? "" : " (up to the last event read)") << "\n";
  const auto o = h.getOptions();
  out << "recorder options: allocator " << safe(o.getAllocatorObject()) << ", min size " << sizeOrNone(o.getMinSize(), "none")
      << ", max size " << sizeOrNone(o.getMaxSize(), "none") << ", stack depth " << o.getStackDepth()
      << ", ring buffer " << common::formatBytes(o.getRingBufferBytes()) << ", duration "
      << (o.getDurationNs() == 0 ? std::string("none") : common::formatDuration(o.getDurationNs())) << "\n";
  // Traces of recorders before stack modes walked frame pointers.
  out << "stack mode:       " << (o.getStackMode().size() == 0 ? std::string("fp (recorded before stack modes)") : safe(o.getStackMode()));
  if (footer && footer->unwindTables > 0)
    out << "; unwind tables of " << footer->unwindTables << " files, " << common::formatBytes(footer->unwindTableBytes)
        << " (BPF maps " << common::formatBytes(footer->unwindMapBytes) << ")";
  out << "\n";
  out << "probed functions:";
  for (auto f : o.getProbedFunctions()) out << " " << safe(f);
  out << "\n";
  // Where each probe sits (older traces: no site recorded, the entry).
  for (const auto& [id, f] : replay.functions()) {
    out << "  " << common::printable(f.symbol) << " in " << common::printable(f.object) << ": ";
    if (f.probeInstruction.empty()) {
      out << "entry\n";
      continue;
    }
    out << (f.probeOffset == 0 ? std::string("entry") : "+" + std::to_string(f.probeOffset)) << " ("
        << common::printable(f.probeInstruction) << ", " << (f.probeEmulated ? "emulated" : "single-stepped")
        << "), file offset " << common::hexNumber(f.symbolFileOffset + f.probeOffset) << (f.custom ? ", --alloc-fn" : "")
        << "\n";
  }

  // Which objects the functions are in; an allocator library's own allocations are
  // reported as allocator-internal (leak_report.h).
  std::map<std::string, std::pair<size_t, bool>> hookedObjects;
  for (const auto& [id, f] : replay.functions()) {
    auto& [count, library] = hookedObjects[f.object];
    ++count;
    library = library || f.allocatorLibrary;
  }
  if (!hookedObjects.empty()) out << "hooked objects:\n";
  for (const auto& [object, what] : hookedObjects)
    out << "  " << common::printable(object) << ": " << what.first << (what.first == 1 ? " function" : " functions")
        << (what.second ? " (an allocator library)" : "") << "\n";
  uint64_t heapAllocations = 0;
  for (const auto& kind : schema::kEventKinds)
    if ((kind.role == schema::EventRole::Allocate || kind.role == schema::EventRole::Reallocate) &&
        !schema::isKernelFamily(kind.family))
      heapAllocations += stats.eventsByKind[static_cast<size_t>(kind.kind)];
  if (!replay.functions().empty() && heapAllocations == 0)
    out << "WARNING:          no call to malloc, new or another hooked function was recorded: if the program\n"
        << "                  allocates, its allocator is not among the hooked objects (statically linked, or\n"
        << "                  under other names: record it with --obj or --alloc-fn)\n";

  out << "status:           ";
  switch (replay.end()) {
    case schema::TraceEnd::Complete:
      out << "complete" << (replay.problem().empty() ? "" : ", but " + safe(replay.problem())) << "\n";
      break;
    case schema::TraceEnd::Truncated: out << "TRUNCATED: " << safe(replay.problem()) << "\n"; break;
    case schema::TraceEnd::Corrupt: out << "CORRUPT: " << safe(replay.problem()) << "\n"; break;
    case schema::TraceEnd::Reading: out << "not read to the end\n"; break;
  }
  if (reader.timeResolutionNs() > 1) out << "time resolution:  " << common::formatDuration(reader.timeResolutionNs()) << "\n";
  if (replay.damageCount() > 0)
    out << "damage:           " << replay.damageCount() << " damaged part(s) skipped (first: " << safe(replay.damage().front())
        << ")\n";
  if (footer) {
    out << "end reason:       " << endReasonName(footer->reason);
    if (!footer->error.empty()) out << ": " << safe(footer->error);
    out << "\n";
  }
  out << "chunks:           " << stats.chunks;
  if (stats.missingChunks > 0) out << " (" << stats.missingChunks << " missing)";
  out << "\n";
  out << "events:           " << stats.events << "\n";
  for (const auto& kind : schema::kEventKinds)
    if (const uint64_t n = stats.eventsByKind[static_cast<size_t>(kind.kind)]) out << "  " << kind.name << ": " << n << "\n";
  if (stats.unknownKindEvents > 0) out << "  unknown kinds: " << stats.unknownKindEvents << "\n";
  out << "stacks:           " << stats.stacksDefined;
  if (stats.stacksIncomplete > 0)
    out << " (" << stats.stacksIncomplete << " incomplete: the walk stopped before the outermost frame)";
  out << "\n";

  uint64_t lostTotal = stats.lostUnknownKind;
  std::ostringstream lost;
  for (const auto& kind : schema::kEventKinds) {
    const auto k = static_cast<size_t>(kind.kind);
    const uint64_t n = std::max(stats.lostByKind[k], footer ? footer->lostByKind[k] : 0);
    if (n == 0) continue;
    lostTotal = common::saturatingAdd(lostTotal, n);
    lost << "  " << kind.name << ": " << n << "\n";
  }
  out << "lost events:      " << (lostTotal == 0 ? std::string("none") : std::to_string(lostTotal) + " (WARNING: lost frees show up as leaks)") << "\n"
      << lost.str();
  if (footer && footer->events != stats.events)
    out << "footer totals:    " << footer->events << " events, " << footer->stacks << " stacks, " << footer->chunks
        << " chunks\n";

  out << "processes:\n";
  if (replay.processes().empty()) out << "  (none recorded)\n";
  for (const auto& p : replay.processes()) {
    out << "  +" << common::formatDuration(p.timeNs - std::min(p.timeNs, start)) << " pid " << p.pid << " ";
    switch (p.kind) {
      case schema::ProcessEventKind::EXEC: out << "exec " << safe(p.command); break;
      case schema::ProcessEventKind::FORK: out << "forked from " << p.parentPid; break;
      case schema::ProcessEventKind::EXIT:
        if (!p.exitStatusKnown) out << "exited (status unknown)";
        else if (p.signal != 0) out << "killed by signal " << p.signal << (p.coreDumped ? " (core dumped)" : "");
        else out << "exited with status " << p.exitCode;
        break;
    }
    out << "\n";
  }

  const auto& maps = replay.maps().all();
  out << "mappings:         " << maps.size() << "\n";
  for (const auto& m : maps) {
    out << "  pid " << m.pid << " " << common::hexNumber(m.start) << "-" << common::hexNumber(m.end) << " offset " << common::hexNumber(m.fileOffset) << " "
        << safe(m.path) << " build-id " << (m.buildId.empty() ? std::string("none") : common::hexBytes(m.buildId)) << " ("
        << (m.source == schema::MappingSource::PROC_MAPS ? "proc maps" : "mmap") << ", +"
        << common::formatDuration(m.timeNs - std::min(m.timeNs, start)) << ")\n";
  }
}

void printSize(std::ostream& out, const TraceSize& size) {
  char buf[64];
  auto perEvent = [&](uint64_t bytes) {
    std::snprintf(buf, sizeof buf, "%.2f", size.events ? static_cast<double>(bytes) / static_cast<double>(size.events) : 0.0);
    return std::string(buf);
  };
  out << "size:             " << size.fileBytes << " bytes, " << perEvent(size.fileBytes) << " bytes per event\n";
  out << "  by column (bytes per event, each column compressed alone):\n";
  uint64_t measured = 0;
  for (const auto& c : size.columns) measured += c.compressedBytes;
  for (const auto& c : size.columns) {
    std::snprintf(buf, sizeof buf, "%.0f%%", size.fileBytes ? 100.0 * static_cast<double>(c.compressedBytes) / static_cast<double>(size.fileBytes) : 0.0);
    const std::string share = buf;
    out << "  " << c.name << ": " << perEvent(c.compressedBytes) << " (" << share << " of the file; "
        << perEvent(c.rawBytes) << " before compression)\n";
  }
  if (size.fileBytes > measured)
    out << "  the rest (header, mappings, functions, ...): " << size.fileBytes - measured << " bytes\n";
}

}  // namespace

int infoMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::vector<std::string> traces;
  po::options_description visible("Options");
  visible.add_options()("help,h", "show this help");
  try {
    const auto vm = parseSubcommandLine(args, visible, traces);
    if (vm.count("help")) {
      out << "Usage: heaptrail info TRACE\n\n"
          << "Describes a trace: target process and command line, kernel and architecture, start\n"
          << "time, recorder options, chunks, events per kind, stacks, lost events, whether the\n"
          << "trace is complete, truncated or corrupt, how the recording ended, process events\n"
          << "and every executable mapping with its build-id; the size per event, and per column of\n"
          << "the event encoding (what dominates the size).\n\n"
          << visible << "\n"
          << "Example:\n  heaptrail info app.htr\n\n"
          << "Exit status: 0 ok, 1 error, 2 usage error.\n";
      return kExitOk;
    }
    if (traces.size() != 1) throw UsageError(traces.empty() ? "missing the trace file" : "expected one trace file");
  } catch (const UsageError& e) {
    err << "heaptrail info: " << e.what() << " (see heaptrail info --help)\n";
    return kExitUsage;
  }
  return runOnTrace("info", traces[0], err, [&] {
    schema::TraceReader reader(traces[0]);
    Replay replay;
    replay.run(reader);
    printInfo(out, reader, replay);
    printSize(out, measureTraceSize(traces[0]));
    return kExitOk;
  });
}

}  // namespace heaptrail::analyzer
