#include "recorder/options.h"

#include <algorithm>
#include <sstream>

#include <boost/program_options.hpp>

#include "bpf/heaptrail_kernel_event.h"
#include "recorder/allocator_functions.h"
#include "recorder/kernel_probes.h"
#include "common/units.h"

namespace po = boost::program_options;

namespace heaptrail::recorder {
namespace {

std::string helpText(const std::string& program, const po::options_description& visible) {
  std::ostringstream out;
  out << "Usage: " << program << " -p PID [options]\n"
      << "       " << program << " [options] -- COMMAND [ARGS...]\n"
      << "       " << program << " --kernel [options] [-p PID | -- COMMAND [ARGS...]]\n"
      << "       " << program << " bundle TRACE [-o FILE]   pack the files a trace names (see bundle --help)\n\n"
      << "Records every heap allocation and free of a process (malloc, calloc, realloc,\n"
      << "reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc, free,\n"
      << "C++ operator new/delete and anonymous mmap/munmap) with its user stack into a\n"
      << "compressed trace file, to be analyzed elsewhere with `heaptrail analyze`.\n"
      << "With --kernel, also (or only) the kernel's own allocations: kmalloc, kmem_cache,\n"
      << "pages and per-CPU memory of every process, with kernel stacks.\n"
      << "Needs root, or CAP_BPF + CAP_PERFMON (--kernel: also CAP_SYSLOG for kernel symbols).\n\n"
      << visible << "\n"
      << "Examples:\n"
      << "  " << program << " -p 1234 -o app.htr          attach to a running process; Ctrl-C stops\n"
      << "  " << program << " -o app.htr -- ./app --flag  start a command, record it from exec to exit\n"
      << "  " << program << " -p 1234 --duration 30s      stop by itself after 30 seconds\n"
      << "  " << program << " -p 1234 --min-size 1k      only allocations of at least 1 KiB\n"
      << "  " << program << " --time-resolution 1ns -- ./app  exact event times (a larger trace)\n"
      << "  " << program << " --stack-mode fp -- ./app    walk frame pointers only (cheaper, for -fno-omit-frame-pointer builds)\n"
      << "  " << program << " --follow-forks -- make     the command and every process it starts\n"
      << "  " << program << " --user nobody -- ./app     run the command as another user\n"
      << "  " << program << " -o - -p 1234 | ssh host 'cat > app.htr'\n"
      << "                                               stream the trace through a pipe\n"
      << "  " << program << " --alloc-fn pool_alloc=malloc --alloc-fn pool_free=free -p 1234\n"
      << "                                               also hook the program's own allocator\n"
      << "  " << program << " --kernel -d 30s -o k.htr     kernel allocations of the whole machine for 30 s\n"
      << "  " << program << " --kernel -o both.htr -- ./app  the command's heap and the kernel's, in one trace\n\n"
      << "Durations take ns, us, ms, s, m or h (default s); sizes take k, M or G (powers of 1024).\n"
      << "Exit status: 0 recorded, 1 error, 2 usage error.\n";
  return out.str();
}

template <typename T>
T parseOrThrow(const std::string& option, const std::string& text,
               std::optional<T> (*parse)(std::string_view)) {
  const auto value = parse(text);
  if (!value) throw po::error("invalid value '" + text + "' for --" + option);
  return *value;
}

}  // namespace

ParsedCommandLine parseRecordOptions(const std::vector<std::string>& args, const std::string& program) {
  ParsedCommandLine result;
  auto& options = result.options;

  std::vector<std::string> own = args;
  const auto dashdash = std::find(own.begin(), own.end(), "--");
  const bool hasDashDash = dashdash != own.end();
  if (hasDashDash) {
    options.command.assign(dashdash + 1, own.end());
    own.erase(dashdash, own.end());
  }

  std::string stackMode = "auto";
  std::string output, duration, timeResolution, minSize, maxSize, ringSize, obj, kernelEvents = "all";
  unsigned kernelStackDepth = options.kernelStackDepth;
  long long pid = -1;
  unsigned stackDepth = options.stackDepth;
  po::options_description visible("Options");
  visible.add_options()
      ("help,h", "show this help")
      ("pid,p", po::value<long long>(&pid), "record the running process PID")
      ("output,o", po::value<std::string>(&output), "trace file to write (default heaptrail-<pid>.htr; - for standard output)")
      ("duration,d", po::value<std::string>(&duration), "stop after this long (e.g. 30s, 5m)")
      ("time-resolution", po::value<std::string>(&timeResolution),
       "store event times in steps of this (default 1ms; 1ns: exact). The order of events is always "
       "exact; ages and --at are precise to this step. Finer costs trace size")
      ("obj", po::value<std::string>(&obj), "allocator ELF object to probe (default: the target's libc, or the executable when statically linked)")
      ("min-size", po::value<std::string>(&minSize), "ignore allocations smaller than this")
      ("max-size", po::value<std::string>(&maxSize), "ignore allocations larger than this")
      ("stack-depth", po::value<unsigned>(&stackDepth), "user stack frames to capture per allocation (1-127, default 64)")
      ("stack-mode", po::value<std::string>(&stackMode),
       "how user stacks are walked: auto (default: unwind tables compiled from each file's .eh_frame, "
       "frame pointers in files without one), cfi (tables only; a file without .eh_frame ends the stack, marked "
       "incomplete) or fp (frame pointers only, for programs built with -fno-omit-frame-pointer)")
      ("ringbuf-size", po::value<std::string>(&ringSize), "BPF ring buffer size, a power of two (default 2M)")
      ("alloc-fn", po::value<std::vector<std::string>>(&options.customFunctions),
       ("hook an application's own allocator function, SYMBOL=KIND, KIND one of " + customKindNames() +
        " (repeatable)").c_str())
      ("user,u", po::value<std::string>(&options.user), "run COMMAND as this user (name or uid), with its groups, HOME, USER, LOGNAME, SHELL and a plain PATH; the recorder keeps its privileges")
      ("follow-forks,f", "also record the processes the target starts (fork, vfork, clone) and what they exec")
      ("release-stacks", "also capture the stacks of frees and deletes, so that mismatched-family and double-free reports show where the block was released (doubles the cost of a free)")
      ("kernel", "record the kernel's allocations (kmalloc, kmem_cache, pages, per-CPU) of every process, alone or beside -p / -- COMMAND")
      ("kernel-events", po::value<std::string>(&kernelEvents), "with --kernel: which of kmalloc,cache,page,percpu to record (default: all)")
      ("kernel-stack-depth", po::value<unsigned>(&kernelStackDepth), "with --kernel: kernel stack frames per allocation (1-64, default 32)")
      ("verbose,v", "print libbpf diagnostics and progress")
      ("quiet,q", "no live status line (on a terminal it shows elapsed time, events, rate, bytes written and lost events, once a second)");

  // Not in --help: for the tests and benchmarks that compare probe sites.
  std::string probeSites = "cheap";
  po::options_description hidden;
  hidden.add_options()("probe-sites", po::value<std::string>(&probeSites), "cheap or entry");
  po::options_description all;
  all.add(visible).add(hidden);

  try {
    po::variables_map vm;
    const po::positional_options_description none;  // a command goes after "--"
    po::store(po::command_line_parser(own).options(all).positional(none).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      result.action = ParsedCommandLine::Action::ShowHelp;
      result.message = helpText(program, visible);
      return result;
    }
    options.verbose = vm.count("verbose") > 0;
    options.quiet = vm.count("quiet") > 0;
    options.followForks = vm.count("follow-forks") > 0;
    options.releaseStacks = vm.count("release-stacks") > 0;
    if (probeSites != "cheap" && probeSites != "entry") throw po::error("--probe-sites must be cheap or entry");
    options.entryProbes = probeSites == "entry";
    for (const auto& f : options.customFunctions)
      if (!parseCustomFunction(f))
        throw po::error("invalid --alloc-fn '" + f + "': expected SYMBOL=KIND with KIND one of " + customKindNames());
    if (vm.count("pid")) {
      if (pid <= 0 || pid > 0x7fffffff) throw po::error("--pid must be a positive process id");
      options.pid = static_cast<pid_t>(pid);
    }
    if (options.pid && !options.command.empty())
      throw po::error("give either -p PID or -- COMMAND, not both");
    if (hasDashDash && options.command.empty()) throw po::error("no command after --");
    options.kernel = vm.count("kernel") > 0;
    if (!options.kernel && (vm.count("kernel-events") || vm.count("kernel-stack-depth")))
      throw po::error("--kernel-events and --kernel-stack-depth need --kernel");
    options.kernelEvents = parseKernelEventGroups(kernelEvents);
    if (options.kernelEvents == 0)
      throw po::error("invalid --kernel-events '" + kernelEvents + "': a comma-separated list of kmalloc, cache, page, percpu (or all)");
    if (kernelStackDepth < 1 || kernelStackDepth > HT_MAX_KERNEL_STACK_DEPTH)
      throw po::error("--kernel-stack-depth must be between 1 and " + std::to_string(HT_MAX_KERNEL_STACK_DEPTH));
    options.kernelStackDepth = kernelStackDepth;
    if (!options.pid && options.command.empty() && !options.kernel)
      throw po::error("nothing to record: give -p PID, -- COMMAND or --kernel");
    if (options.kernel && !options.pid && options.command.empty() && options.followForks)
      throw po::error("--follow-forks needs -p PID or -- COMMAND");
    if (vm.count("user") && options.command.empty())
      throw po::error("--user applies to a command started with -- COMMAND, not to -p or --kernel");
    if (vm.count("user") && options.user.empty()) throw po::error("--user needs a user name");
    if (vm.count("output") && output.empty()) throw po::error("--output needs a file name");
    options.output = output;
    if (vm.count("obj") && obj.empty()) throw po::error("--obj needs a file name");
    if (!obj.empty()) options.allocatorObject = obj;
    if (vm.count("duration")) {
      options.durationNs = parseOrThrow<uint64_t>("duration", duration, common::parseDuration);
      if (options.durationNs == 0) throw po::error("--duration must be positive");
    }
    if (vm.count("time-resolution")) {
      options.timeResolutionNs = parseOrThrow<uint64_t>("time-resolution", timeResolution, common::parseDuration);
      if (options.timeResolutionNs == 0 || options.timeResolutionNs > 1'000'000'000)
        throw po::error("--time-resolution must be between 1ns and 1s");
    }
    if (vm.count("min-size")) options.minSize = parseOrThrow<uint64_t>("min-size", minSize, common::parseSize);
    if (vm.count("max-size")) options.maxSize = parseOrThrow<uint64_t>("max-size", maxSize, common::parseSize);
    if (options.maxSize && options.maxSize < options.minSize)
      throw po::error("--max-size is smaller than --min-size");
    if (stackDepth < 1 || stackDepth > HT_MAX_STACK_DEPTH)
      throw po::error("--stack-depth must be between 1 and " + std::to_string(HT_MAX_STACK_DEPTH));
    options.stackDepth = stackDepth;
    const auto mode = unwind::parseStackMode(stackMode);
    if (!mode) throw po::error("invalid --stack-mode '" + stackMode + "': auto, cfi or fp");
    options.stackMode = *mode;
    if (vm.count("ringbuf-size")) {
      options.ringBufferBytes = parseOrThrow<uint64_t>("ringbuf-size", ringSize, common::parseSize);
      const uint64_t r = options.ringBufferBytes;
      if (r < 4096 || (r & (r - 1)) != 0 || r > (1ull << 30))
        throw po::error("--ringbuf-size must be a power of two between 4k and 1G");
      options.kernelRingBufferBytes = r;
    }
  } catch (const po::too_many_positional_options_error&) {
    result.action = ParsedCommandLine::Action::UsageError;
    std::string extra;
    for (const auto& a : own)
      if (!a.starts_with("-")) extra = a;
    result.message = program + ": unexpected argument" + (extra.empty() ? "" : " '" + extra + "'") +
                     " (a command to record goes after --)\nTry '" + program + " --help' for more information.";
  } catch (const po::error& e) {
    result.action = ParsedCommandLine::Action::UsageError;
    result.message = program + ": " + e.what() + "\nTry '" + program + " --help' for more information.";
  }
  return result;
}

}  // namespace heaptrail::recorder
