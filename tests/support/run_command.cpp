#include "tests/support/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace heaptrail::testing {

BackgroundCommand::BackgroundCommand(const std::vector<std::string>& argv) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  inFd_ = in[1];
  outFd_ = out[0];
  errFd_ = err[0];
}

BackgroundCommand::~BackgroundCommand() {
  if (!waited_) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

void BackgroundCommand::signal(int sig) { ::kill(pid_, sig); }

void BackgroundCommand::readSome(int timeoutMs) {
  pollfd fds[2] = {{outFd_, POLLIN, 0}, {errFd_, POLLIN, 0}};
  char buf[4096];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const int ready = ::poll(fds, 2, timeoutMs);
    if (ready <= 0) return;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        (i == 0 ? outFd_ : errFd_) = -1;
        fds[i].fd = -1;
      } else {
        (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
      }
    }
    if (timeoutMs >= 0) return;
  }
}

bool BackgroundCommand::waitFor(const std::string& text, bool onStderr, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string& stream = onStderr ? err_ : out_;
  while (stream.find(text) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || (outFd_ < 0 && errFd_ < 0)) return false;
    readSome(static_cast<int>(left.count()));
  }
  return true;
}

bool BackgroundCommand::waitForOutput(const std::string& text, std::chrono::milliseconds timeout) {
  return waitFor(text, false, timeout);
}

bool BackgroundCommand::waitForError(const std::string& text, std::chrono::milliseconds timeout) {
  return waitFor(text, true, timeout);
}

void BackgroundCommand::writeInput(const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(inFd_, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

void BackgroundCommand::closeInput() {
  if (inFd_ >= 0) ::close(inFd_);
  inFd_ = -1;
}

CommandResult BackgroundCommand::wait() {
  if (waited_) return result_;
  closeInput();
  readSome(-1);
  result_.out = std::move(out_);
  result_.err = std::move(err_);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  waited_ = true;
  if (WIFEXITED(status)) result_.exitCode = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result_.signal = WTERMSIG(status);
  return result_;
}

CommandResult runCommand(const std::vector<std::string>& argv) { return BackgroundCommand(argv).wait(); }

}  // namespace heaptrail::testing
