#include "analyzer/cli.h"

#include "recorder/recording_session.h"

#ifndef HEAPTRAIL_VERSION
#define HEAPTRAIL_VERSION "unknown"
#endif

namespace heaptrail::analyzer {
namespace {

const char* const kHelp =
    "Usage: heaptrail COMMAND [options]\n"
    "\n"
    "Finds memory leaks in traces of every allocation and free of a process, recorded\n"
    "with eBPF by `heaptrail record` (or heaptrail-record) and analyzed offline.\n"
    "\n"
    "Commands:\n"
    "  analyze TRACE   allocations still outstanding at the end of the recording (or at\n"
    "                  a chosen time), grouped by stack, worst first\n"
    "  info TRACE      what a trace holds: target, duration, event counts, lost events,\n"
    "                  truncation, mappings with build-ids\n"
    "  record ...      record a process (the same as heaptrail-record)\n"
    "  help COMMAND    show the help of a command\n"
    "\n"
    "Examples:\n"
    "  heaptrail record -o app.htr -- ./app          record ./app from start to exit\n"
    "  heaptrail analyze app.htr                     leaks at the end of the recording\n"
    "  heaptrail analyze app.htr --since 60s         only allocations alive for 60 s or more\n"
    "  heaptrail analyze app.htr --at 45s --top 20   the state 45 s into the recording\n"
    "  heaptrail analyze app.htr --sysroot ./rootfs --debug-dir ./symbols\n"
    "  heaptrail analyze app.htr --format json > leaks.json\n"
    "  heaptrail info app.htr\n"
    "\n"
    "Run `heaptrail COMMAND --help` for the options of a command.\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

}  // namespace

int heaptrailMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << "heaptrail: missing command (see heaptrail --help)\n";
    return kExitUsage;
  }
  const std::string& command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "-h" || command == "--help") {
    out << kHelp;
    return kExitOk;
  }
  if (command == "--version") {
    out << "heaptrail " << HEAPTRAIL_VERSION << "\n";
    return kExitOk;
  }
  if (command == "analyze") return analyzeMain(rest, out, err);
  if (command == "info") return infoMain(rest, out, err);
  if (command == "record") return recorder::recordMain(rest, "heaptrail record");
  if (command == "help") {
    if (rest.empty()) {
      out << kHelp;
      return kExitOk;
    }
    if (rest[0] == "analyze") return analyzeMain({"--help"}, out, err);
    if (rest[0] == "info") return infoMain({"--help"}, out, err);
    if (rest[0] == "record") return recorder::recordMain({"--help"}, "heaptrail record");
    err << "heaptrail: unknown command '" << rest[0] << "' (see heaptrail --help)\n";
    return kExitUsage;
  }
  err << "heaptrail: unknown command '" << command << "' (see heaptrail --help)\n";
  return kExitUsage;
}

}  // namespace heaptrail::analyzer
