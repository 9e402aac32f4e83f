#pragma once

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

// A started command that the test interacts with before it ends.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::vector<std::string>& argv);
  ~BackgroundCommand();
  int pid() const { return pid_; }
  void signal(int sig);
  CommandResult wait();

 private:
  int pid_ = -1;
  int outFd_ = -1;
  int errFd_ = -1;
  bool waited_ = false;
};

}  // namespace heaptrail::testing
