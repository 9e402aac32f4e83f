#include "recorder/stop_signals.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

void say(const char* text) { (void)!::write(STDERR_FILENO, text, std::strlen(text)); }

// Ends the process as the signal would have, had it not been blocked.
[[noreturn]] void dieBy(int sig) {
  ::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

}  // namespace

StopSignals::StopSignals() {
  sigemptyset(&set_);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set_, s);
  ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  signalFd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  ready_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  shutdown_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!signalFd_ || !ready_ || !shutdown_) {
    const int err = errno;
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    throw RecordError(std::string("cannot watch for Ctrl-C: ") + std::strerror(err));
  }
  watcher_ = std::thread([this] { watch(); });
}

StopSignals::~StopSignals() {
  const uint64_t one = 1;
  (void)!::write(shutdown_.get(), &one, sizeof one);
  watcher_.join();
  signalFd_.reset();
  ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

void StopSignals::watch() {
  pollfd fds[2] = {{signalFd_.get(), POLLIN, 0}, {shutdown_.get(), POLLIN, 0}};
  while (true) {
    const bool waitingForAnswer = signal_.load() != 0 && !taken_.load();
    const int n = ::poll(fds, 2, waitingForAnswer ? kUnansweredStopSeconds * 1000 : -1);
    if (n < 0 && errno == EINTR) continue;
    if (fds[1].revents & POLLIN) return;
    if (n == 0 && waitingForAnswer && !taken_.load()) {
      say("heaptrail-record: not responding to the stop signal; stopping now (the trace ends at its last "
          "complete chunk)\n");
      dieBy(signal_.load());
    }
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo info{};
    if (::read(signalFd_.get(), &info, sizeof info) != sizeof info) continue;
    const int sig = static_cast<int>(info.ssi_signo);
    int expected = 0;
    if (signal_.compare_exchange_strong(expected, sig)) {
      const uint64_t one = 1;
      (void)!::write(ready_.get(), &one, sizeof one);
      continue;
    }
    say("heaptrail-record: second stop signal; stopping now (the trace ends at its last complete chunk)\n");
    dieBy(sig);
  }
}

int StopSignals::take() {
  const int sig = signal_.load();
  if (sig == 0 || taken_.exchange(true)) return 0;
  return sig;
}

void StopSignals::throwIfRequested() {
  if (const int sig = take(); sig != 0 || requested())
    throw RecordError("stopped by signal " + std::to_string(signal_.load()) + " (" + strsignal(signal_.load()) +
                      ") before recording started");
}

}  // namespace heaptrail::recorder
