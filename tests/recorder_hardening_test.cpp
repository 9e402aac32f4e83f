// The recorder runs as root next to processes and directories that other users control:
// its output cannot be steered, a hostile target cannot hang it, a started command does
// not outlive it, and every way a start can fail is said precisely. Needs root.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/build_id.h"
#include "tests/support/recording_test.h"

namespace heaptrail::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void writeFile(const fs::path& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary) << text;
  ::chmod(path.c_str(), mode);
}

// The pid the recorder says it records ("recording pid N").
pid_t recordedPid(const std::string& err) {
  const auto at = err.find("recording pid ");
  return at == std::string::npos ? -1 : static_cast<pid_t>(std::stol(err.substr(at + 14)));
}

// A handle on a process that is not our child, to see it end.
class ProcessWatch {
 public:
  explicit ProcessWatch(pid_t pid) : fd_(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))) {}
  ~ProcessWatch() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool valid() const { return fd_ >= 0; }
  // True once the process has exited (within `timeout`).
  bool endsWithin(std::chrono::milliseconds timeout) const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  }

 private:
  int fd_;
};

const schema::ProcessRecord* exitOf(const TraceContents& t, pid_t pid) {
  for (const auto& p : t.processes)
    if (p.kind == schema::ProcessEventKind::EXIT && p.pid == static_cast<uint32_t>(pid)) return &p;
  return nullptr;
}

class RecorderHardeningTest : public RecordingTest {
 protected:
  void TearDown() override {
    if (mounted_) ::umount2(mounted_->c_str(), MNT_DETACH);
  }
  // Runs the recorder and waits for it to end, at most `timeout` (a hang is a failure,
  // not a test that never ends).
  CommandResult runBounded(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 30s) {
    BackgroundCommand command(argv);
    ProcessWatch watch(command.pid());
    if (!watch.endsWithin(timeout)) {
      ADD_FAILURE() << "still running after " << timeout.count() << " ms: it hangs";
      command.signal(SIGKILL);
    }
    return command.wait();
  }
  std::optional<fs::path> mounted_;
};

// --- item 3: the output -------------------------------------------------------------

TEST_F(RecorderHardeningTest, FailedStartLeavesTheFileThatWasThere) {
  writeFile(output(), "an older trace");
  const auto r = runCommand({kRecorder, "-o", output().string(), "--alloc-fn", "nosuchsym=malloc", "--",
                             kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("nosuchsym"), std::string::npos) << r.err;
  EXPECT_EQ(readFile(output()), "an older trace");
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1u) << "nothing else was left behind";

  // A command that cannot run is found out before the old file is replaced as well.
  writeFile(dir_ / "data.txt", "no shebang\n", 0755);
  const auto r2 = runCommand({kRecorder, "-o", output().string(), "--", (dir_ / "data.txt").string()});
  EXPECT_EQ(r2.exitCode, 1);
  EXPECT_EQ(readFile(output()), "an older trace");
}

TEST_F(RecorderHardeningTest, OutputThroughASymlinkIsRefused) {
  writeFile(dir_ / "victim.conf", "root's configuration");
  fs::create_symlink(dir_ / "victim.conf", output());
  const auto r = runCommand({kRecorder, "-o", output().string(), "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
  EXPECT_EQ(readFile(dir_ / "victim.conf"), "root's configuration");
}

TEST_F(RecorderHardeningTest, TraceIsPrivateAndReplacesAnOldOne) {
  writeFile(output(), "an older trace", 0644);
  const auto t = record({kSamples + "/quick"});
  EXPECT_EQ(t.end, schema::TraceEnd::Complete);
  struct stat st {};
  ASSERT_EQ(::stat(output().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "a trace holds command lines and host names";
}

// --- item 4: a target cannot hang or steer the recorder ------------------------------

// A copy of a library the target may unlink and replace.
fs::path copyOfLibrary(const fs::path& dir, const std::string& samples) {
  const auto copy = dir / "libswapped.so";
  fs::copy_file(samples + "/libhtplugin.so", copy);
  return copy;
}

TEST_F(RecorderHardeningTest, LibraryReplacedByAFifoDoesNotHangTheAttach) {
  const auto library = copyOfLibrary(dir_, kSamples);
  const std::string buildId = common::readBuildId(library);
  ASSERT_FALSE(buildId.empty());
  BackgroundCommand target({kSamples + "/map_swap", library.string(), "fifo", "", "stdin"});
  ASSERT_TRUE(target.waitForOutput("ready"));
  ASSERT_TRUE(fs::is_fifo(library));
  BackgroundCommand recorder({kRecorder, "-p", std::to_string(target.pid()), "-o", output().string()});
  ASSERT_TRUE(recorder.waitForError("recording pid", 30s)) << "blocked on the FIFO";
  target.closeInput();
  ASSERT_TRUE(recorder.waitForError(" events (", 30s));
  EXPECT_EQ(recorder.wait().exitCode, 0);
  const auto t = loadTrace(output());
  EXPECT_EQ(t.eventsWithSize(7007).size(), 1u);
  bool found = false;
  for (const auto& m : t.mappings)
    if (m.path.starts_with(library.string())) {  // "... (deleted)" once it was unlinked
      found = true;
      EXPECT_EQ(m.buildId, buildId) << "read from the mapped file, not from what is at its path now";
    }
  EXPECT_TRUE(found);
}

TEST_F(RecorderHardeningTest, LibraryReplacedWhileRecordingCannotHangOrSteerTheRecorder) {
  // The library is mapped (dlopen) after the recording started and replaced at once:
  // the recorder looks at it when the mapping event arrives. The link leads to a file
  // that defines malloc: probing it would mean root followed the target's link.
  for (const char* swap : {"fifo", "link"}) {
    SCOPED_TRACE(swap);
    const auto library = copyOfLibrary(dir_, kSamples);
    const auto r = runBounded({kRecorder, "-o", output().string(), "--", kSamples + "/map_swap", library.string(),
                               swap, kSamples + "/quick_static"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    const auto t = loadTrace(output());
    EXPECT_EQ(t.eventsWithSize(7007).size(), 1u);
    for (const auto& [id, f] : t.functions) EXPECT_FALSE(f.object.starts_with(library.string())) << f.symbol;
    fs::remove(library);
    fs::remove(library.string() + " (deleted)");
  }
}

TEST_F(RecorderHardeningTest, ObjThatIsAFifoIsRefusedNotWaitedOn) {
  const auto fifo = dir_ / "libc.so.6";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto r = runBounded({kRecorder, "--obj", fifo.string(), "-o", output().string(), "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

// --- item 6: the started command does not outlive its recording ----------------------

TEST_F(RecorderHardeningTest, StoppedRecorderTerminatesTheCommand) {
  // SIGINT is not sent to the command here (no terminal): after a grace period the
  // recorder terminates it, as for SIGTERM and the end of --duration.
  for (const std::string how : {"SIGTERM", "SIGINT", "duration"}) {
    SCOPED_TRACE(how);
    const auto file = output(how + ".htr");
    std::vector<std::string> argv = {kRecorder, "-o", file.string()};
    if (how == "duration") argv.insert(argv.end(), {"--duration", "1s"});
    argv.insert(argv.end(), {"--", kSamples + "/aged", "stdin"});
    BackgroundCommand recorder(argv);
    ASSERT_TRUE(recorder.waitForError("Ctrl-C to stop"));  // the whole line, with the pid
    const pid_t command = recordedPid(recorder.errorSoFar());
    ProcessWatch watch(command);
    ASSERT_TRUE(watch.valid());
    ASSERT_TRUE(recorder.waitForOutput("ready"));  // the command's own output
    if (how != "duration") recorder.signal(how == "SIGTERM" ? SIGTERM : SIGINT);
    EXPECT_TRUE(watch.endsWithin(20s)) << "the command outlived its recording";
    const auto r = recorder.wait();
    EXPECT_EQ(r.exitCode, 0) << r.err;
    EXPECT_NE(r.err.find("the command was still running and was terminated"), std::string::npos) << r.err;
    const auto t = loadTrace(file);
    EXPECT_EQ(t.end, schema::TraceEnd::Complete);
    const auto* exit = exitOf(t, command);
    ASSERT_NE(exit, nullptr) << "its end is in the trace";
    EXPECT_EQ(exit->signal, SIGTERM);
  }
}

TEST_F(RecorderHardeningTest, CommandIgnoringSigtermIsKilled) {
  BackgroundCommand recorder({kRecorder, "-o", output().string(), "--", "/bin/sh", "-c",
                              "trap '' TERM INT HUP; echo ready; while :; do sleep 1; done"});
  ASSERT_TRUE(recorder.waitForError("Ctrl-C to stop"));  // the whole line, with the pid
  const pid_t command = recordedPid(recorder.errorSoFar());
  ASSERT_TRUE(recorder.waitForOutput("ready"));
  recorder.signal(SIGTERM);
  const auto r = recorder.wait();
  EXPECT_EQ(r.exitCode, 0) << r.err;
  const auto t = loadTrace(output());  // exitOf points into it: keep it alive
  const auto* exit = exitOf(t, command);
  ASSERT_NE(exit, nullptr);
  EXPECT_EQ(exit->signal, SIGKILL);
}

TEST_F(RecorderHardeningTest, KilledRecorderTakesItsCommandAlong) {
  BackgroundCommand recorder({kRecorder, "-o", output().string(), "--", kSamples + "/aged", "stdin"});
  ASSERT_TRUE(recorder.waitForError("Ctrl-C to stop"));  // the whole line, with the pid
  ProcessWatch watch(recordedPid(recorder.errorSoFar()));
  ASSERT_TRUE(watch.valid());
  ASSERT_TRUE(recorder.waitForOutput("ready"));
  recorder.signal(SIGKILL);
  recorder.wait();
  EXPECT_TRUE(watch.endsWithin(20s)) << "PR_SET_PDEATHSIG";
}

TEST_F(RecorderHardeningTest, FullDiskEndsTheRecordingAndTheCommand) {
  const auto full = dir_ / "full";
  fs::create_directory(full);
  ASSERT_EQ(::mount("tmpfs", full.c_str(), "tmpfs", 0, "size=12k"), 0) << std::strerror(errno);
  mounted_ = full;
  // Allocates far more than 12 KiB of events (exact times: a predictable churn is tiny
  // otherwise), then would wait for input forever.
  BackgroundCommand recorder({kRecorder, "--time-resolution", "1ns", "-o", (full / "t.htr").string(), "--",
                              kSamples + "/churn", "100000"});
  ASSERT_TRUE(recorder.waitForError("Ctrl-C to stop"));  // the whole line, with the pid
  ProcessWatch watch(recordedPid(recorder.errorSoFar()));
  ASSERT_TRUE(watch.valid());
  EXPECT_TRUE(watch.endsWithin(30s)) << "the command outlived its recording";
  const auto r = recorder.wait();
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_NE(r.err.find("disk full"), std::string::npos) << r.err;
}

// --- item 7: --user ----------------------------------------------------------------

TEST_F(RecorderHardeningTest, UserOptionRunsTheCommandAsThatUser) {
  // The program must be reachable by nobody: a world-readable copy.
  ::chmod(dir_.c_str(), 0755);
  fs::copy_file(kSamples + "/quick", dir_ / "quick");
  ::chmod((dir_ / "quick").c_str(), 0755);
  const auto t = record({"/bin/sh", "-c",
                         "id -u; id -g; id -G; echo \"$HOME|$USER|$LOGNAME|$SHELL|$PATH\"; exec " +
                             (dir_ / "quick").string()},
                        {"--user", "nobody"});
  std::istringstream out(last_.out);
  std::string uid, gid, groups, env;
  std::getline(out, uid);
  std::getline(out, gid);
  std::getline(out, groups);
  std::getline(out, env);
  EXPECT_EQ(uid, "65534") << last_.out;
  EXPECT_EQ(gid, "65534");
  EXPECT_EQ(groups, "65534") << "nobody's groups, none of root's";
  EXPECT_EQ(env, "/nonexistent|nobody|nobody|/usr/sbin/nologin|/usr/local/bin:/usr/bin:/bin");
  // The recorder kept its privileges: the command (exec'd by the shell) was recorded.
  EXPECT_EQ(t.eventsWithSize(11011).size(), 1u);
  EXPECT_EQ(t.end, schema::TraceEnd::Complete);

  const auto unknown = runCommand({kRecorder, "-o", output("u.htr").string(), "--user", "no-such-user-here", "--",
                                   kSamples + "/quick"});
  EXPECT_EQ(unknown.exitCode, 1);
  EXPECT_NE(unknown.err.find("no such user"), std::string::npos) << unknown.err;
}

// --- item 8: the smaller ones --------------------------------------------------------

TEST_F(RecorderHardeningTest, TraceStreamsToAPipe) {
  for (const std::string name : {"-", "/dev/stdout"}) {
    SCOPED_TRACE(name);
    // The command's own output must not end up in the trace.
    const auto r = runCommand({kRecorder, "-o", name, "--", "/bin/sh", "-c", "echo from-the-command; exec " +
                                                                                 kSamples + "/quick"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    EXPECT_NE(r.err.find("from-the-command"), std::string::npos) << "moved to stderr";
    std::ofstream(output(), std::ios::binary | std::ios::trunc) << r.out;
    const auto t = loadTrace(output());
    EXPECT_EQ(t.end, schema::TraceEnd::Complete) << t.problem;
    EXPECT_EQ(t.eventsWithSize(11011).size(), 1u);
  }
}

TEST_F(RecorderHardeningTest, FifoWithoutReaderIsAnErrorNotAHang) {
  const auto fifo = dir_ / "t.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto r = runBounded({kRecorder, "-o", fifo.string(), "--", kSamples + "/quick"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("no reader"), std::string::npos) << r.err;
}

TEST_F(RecorderHardeningTest, CommandsThatCannotRunSayWhy) {
  writeFile(dir_ / "text", "echo hello\n", 0755);
  writeFile(dir_ / "script", "#!/nonexistent/interpreter -x\necho hello\n", 0755);
  writeFile(dir_ / "not-executable", "#!/bin/sh\n", 0644);
  const std::pair<std::string, std::string> cases[] = {
      {"/tmp", "cannot run /tmp: it is a directory"},
      {(dir_ / "text").string(), "neither an ELF program nor a script"},
      {(dir_ / "script").string(), "its interpreter /nonexistent/interpreter cannot run: it does not exist"},
      {(dir_ / "not-executable").string(), "not executable"},
  };
  for (const auto& [command, message] : cases) {
    const auto r = runCommand({kRecorder, "-o", output().string(), "--", command});
    EXPECT_EQ(r.exitCode, 1) << command;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("no allocator"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(output()));
  }
}

TEST_F(RecorderHardeningTest, ZombiesAndKernelThreadsAreNamedAsSuch) {
  const pid_t zombie = ::fork();
  if (zombie == 0) ::_exit(0);
  ProcessWatch(zombie).endsWithin(10s);  // exited, not reaped: a zombie
  auto r = runCommand({kRecorder, "-p", std::to_string(zombie), "-o", output().string()});
  ::waitpid(zombie, nullptr, 0);
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("zombie"), std::string::npos) << r.err;

  std::ifstream stat("/proc/2/stat");
  std::string line;
  std::getline(stat, line);
  if (line.find("(kthreadd)") == std::string::npos) GTEST_SKIP() << "pid 2 is not kthreadd here";
  r = runCommand({kRecorder, "-p", "2", "-o", output().string()});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("kernel thread"), std::string::npos) << r.err;
}

TEST_F(RecorderHardeningTest, NoEventIsOlderThanTheStartOfTheRecording) {
  // Attached to a process that allocates all the time, events arrive while the probes
  // are being attached.
  BackgroundCommand target({kSamples + "/churn", "forever"});
  ASSERT_TRUE(target.waitForOutput("ready"));
  const auto r = runCommand({kRecorder, "-p", std::to_string(target.pid()), "-o", output().string(), "-d", "500ms"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const auto t = loadTrace(output());
  ASSERT_FALSE(t.events.empty());
  uint64_t earliest = UINT64_MAX;
  for (const auto& e : t.events) earliest = std::min(earliest, e.timeNs);
  EXPECT_GE(earliest, t.startTimeNs);
}

}  // namespace
}  // namespace heaptrail::testing
