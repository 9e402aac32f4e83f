#include "recorder/record_command.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "common/safe_text.h"
#include "common/units.h"
#include "recorder/allocator_probes.h"
#include "recorder/bundle.h"
#include "recorder/live_status.h"
#include "recorder/options.h"
#include "recorder/recording_session.h"

namespace heaptrail::recorder {
namespace {

std::string outputName(const std::filesystem::path& output) {
  return output == "-" ? "standard output" : common::printable(output.string());
}

std::string describeEnd(const RecordSummary& s) {
  switch (s.endReason) {
    case schema::EndReason::TARGET_EXITED:
      if (s.pid == 0) return "stopped";
      if (s.exitStatus) {
        if (s.exitStatus->signal)
          return "target killed by signal " + std::to_string(s.exitStatus->signal) + " (" +
                 strsignal(s.exitStatus->signal) + ")";
        return "target exited with status " + std::to_string(s.exitStatus->exitCode);
      }
      return "target exited";
    case schema::EndReason::INTERRUPTED:
      return "stopped by signal";
    case schema::EndReason::DURATION:
      return "duration reached";
    case schema::EndReason::ERROR:
      return "stopped by an error";
  }
  return "";
}

void printSummary(std::ostream& err, const std::string& program, const RecordSummary& s) {
  const double ratio =
      s.bytesWritten ? static_cast<double>(s.uncompressedBytes) / static_cast<double>(s.bytesWritten) : 0;
  char ratioText[32];
  std::snprintf(ratioText, sizeof ratioText, "%.1fx", ratio);
  err << program << ": " << s.events << " events (" << s.allocations << " allocations, " << s.frees << " frees) in "
      << common::formatDuration(s.durationNs) << ", " << s.stacks << " unique stacks"
      << (s.incompleteStacks ? " (" + std::to_string(s.incompleteStacks) + " incomplete)" : std::string()) << ", " << s.lost << " lost, "
      << common::formatBytes(s.bytesWritten) << " written to " << outputName(s.output)
      << " (compression " << ratioText << "); " << describeEnd(s)
      << (s.workloadTerminated ? "; the command was still running and was terminated" : "") << "\n";
  if (s.lost)
    err << program << ": warning: " << s.lost
        << " events were lost (ring buffer full); try a larger --ringbuf-size\n";
  if (s.lostMappingRecords) err << program << ": warning: " << s.lostMappingRecords << " mapping records were lost\n";
  for (const auto& warning : s.warnings) err << program << ": warning: " << warning << "\n";
  if (s.pid != 0 && s.heapAllocations == 0 && s.endReason != schema::EndReason::ERROR)
    err << program << ": warning: no call to malloc, new or another hooked allocator function was recorded; "
        << "if the program allocates, its allocator is one heaptrail did not find (statically linked, or "
        << "under other names): name it with --obj or --alloc-fn (heaptrail info lists what was hooked)\n";
}

}  // namespace

int recordMain(const std::vector<std::string>& args, const std::string& program) {
  if (!args.empty() && args[0] == "bundle") return bundleMain({args.begin() + 1, args.end()}, program);
  const auto parsed = parseRecordOptions(args, program);
  switch (parsed.action) {
    case ParsedCommandLine::Action::ShowHelp:
      std::cout << parsed.message;
      return 0;
    case ParsedCommandLine::Action::UsageError:
      std::cerr << parsed.message << "\n";
      return 2;
    case ParsedCommandLine::Action::Record:
      break;
  }
  configureLibbpfLogging(parsed.options.verbose);
  LiveStatus status(STDERR_FILENO, !parsed.options.quiet && ::isatty(STDERR_FILENO));
  try {
    const RecordSummary s = runRecording(parsed.options, [&](const RecordSummary& started) {
      if (started.pid == 0)
        std::cerr << program << ": recording kernel allocations into " << outputName(started.output)
                  << "; Ctrl-C to stop\n";
      else
        std::cerr << program << ": recording pid " << started.pid << (parsed.options.kernel ? " and kernel allocations" : "")
                  << " into " << outputName(started.output) << "; Ctrl-C to stop\n";
    }, [&](const RecordSummary& progress) { status.update(progress); });
    status.clear();
    printSummary(std::cerr, program, s);
    if (s.endReason == schema::EndReason::ERROR) {
      std::cerr << program << ": error: " << s.error << " (the trace is readable up to this point)\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    status.clear();
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace heaptrail::recorder
