#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace heaptrail::testing {

struct CommandResult {
  int exitCode = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// Runs argv (no shell) to completion with stdout and stderr captured.
CommandResult runCommand(const std::vector<std::string>& argv);

// A started command that the test interacts with before it ends: its stdin is a pipe
// the test writes to, its stdout and stderr are captured.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::vector<std::string>& argv);
  ~BackgroundCommand();
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;

  int pid() const { return pid_; }
  void signal(int sig);
  // Idempotent: later calls return the first result.
  CommandResult wait();
  // Handshakes: waits until the command has written `text` to stdout (or stderr);
  // false when it ends or `timeout` passes first.
  bool waitForOutput(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  bool waitForError(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void writeInput(const std::string& text);
  void closeInput();
  // What it wrote to stderr so far (as far as a waitFor... call read it).
  const std::string& errorSoFar() const { return err_; }

 private:
  bool waitFor(const std::string& text, bool onStderr, std::chrono::milliseconds timeout);
  // Reads what is available within `timeoutMs` (-1: until both streams end).
  void readSome(int timeoutMs);

  int pid_ = -1;
  int inFd_ = -1;
  int outFd_ = -1;
  int errFd_ = -1;
  std::string out_;
  std::string err_;
  bool waited_ = false;
  CommandResult result_;
};

}  // namespace heaptrail::testing
