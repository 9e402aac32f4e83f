#include "analyzer/cli.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

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
    "  diff BASE NEW   compare two traces stack by stack: what grew, what is gone\n"
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
    "  heaptrail analyze app.htr --format html -o app.html   flame graph, memory over time\n"
    "  heaptrail diff before.htr after.htr          did the fix remove the leak?\n"
    "  heaptrail info app.htr\n"
    "\n"
    "Run `heaptrail COMMAND --help` for the options of a command.\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

// The recorder binary: next to this one (an installed or built pair), else on PATH.
std::filesystem::path findRecorder() {
  constexpr const char* kName = "heaptrail-record";
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto beside = self.parent_path() / kName;
    if (::access(beside.c_str(), X_OK) == 0) return beside;
  }
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / kName;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// `heaptrail record ...` becomes `heaptrail-record ...`: the workstation's analyzer does
// not carry the recorder (nor libbpf). Returns only when the recorder cannot be run.
int runRecorder(const std::vector<std::string>& args, std::ostream& err) {
  const auto recorder = findRecorder();
  if (recorder.empty()) {
    err << "heaptrail record: heaptrail-record is not installed next to heaptrail nor on PATH\n";
    return kExitError;
  }
  std::vector<std::string> argv = {recorder.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> raw;
  for (auto& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  err.flush();
  ::execv(raw[0], raw.data());
  err << "heaptrail record: cannot run " << recorder.string() << ": " << std::strerror(errno) << "\n";
  return kExitError;
}

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
  if (command == "diff") return diffMain(rest, out, err);
  if (command == "record") return runRecorder(rest, err);
  if (command == "help") {
    if (rest.empty()) {
      out << kHelp;
      return kExitOk;
    }
    if (rest[0] == "analyze") return analyzeMain({"--help"}, out, err);
    if (rest[0] == "info") return infoMain({"--help"}, out, err);
    if (rest[0] == "diff") return diffMain({"--help"}, out, err);
    if (rest[0] == "record") return runRecorder({"--help"}, err);
    err << "heaptrail: unknown command '" << rest[0] << "' (see heaptrail --help)\n";
    return kExitUsage;
  }
  err << "heaptrail: unknown command '" << command << "' (see heaptrail --help)\n";
  return kExitUsage;
}

}  // namespace heaptrail::analyzer
