// Ctrl-C and SIGTERM work at every moment (recorder/stop_signals.h): taken by the main
// loop when it runs, and ending the process when it is stuck.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "recorder/stop_signals.h"

namespace heaptrail::recorder {
namespace {

TEST(StopSignals, AStopSignalIsTakenOnce) {
  StopSignals signals;
  EXPECT_FALSE(signals.requested());
  EXPECT_EQ(signals.take(), 0);
  ::kill(::getpid(), SIGTERM);
  pollfd p{signals.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  EXPECT_TRUE(signals.requested());
  EXPECT_EQ(signals.take(), SIGTERM);
  EXPECT_EQ(signals.take(), 0);
  EXPECT_EQ(::poll(&p, 1, 0), 1) << "stays readable, so a write waiting on a pipe sees it";
}

// A child that installs StopSignals, says so, and then (after taking the first signal
// when `takeFirst`) is stuck for good, as a recorder blocked in a system call would be.
pid_t stuckChild(bool takeFirst, int& reportFd) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    StopSignals signals;
    (void)!::write(fds[1], "r", 1);
    if (takeFirst) {
      pollfd p{signals.fd(), POLLIN, 0};
      while (::poll(&p, 1, -1) != 1) {
      }
      signals.take();
      (void)!::write(fds[1], "t", 1);
    }
    for (;;) ::pause();  // the stop signals are blocked: nothing wakes this up
  }
  ::close(fds[1]);
  reportFd = fds[0];
  char c = 0;
  EXPECT_EQ(::read(reportFd, &c, 1), 1);
  return pid;
}

// How the child ended; SIGKILLed after 30 s if it did not.
int endOf(pid_t pid) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  pollfd p{pidfd, POLLIN, 0};
  if (::poll(&p, 1, 30000) != 1) {
    ADD_FAILURE() << "the stuck process did not end";
    ::kill(pid, SIGKILL);
  }
  ::close(pidfd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(StopSignals, UnansweredStopEndsAStuckProcess) {
  int report = -1;
  const pid_t pid = stuckChild(false, report);
  ::kill(pid, SIGTERM);
  const int status = endOf(pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  ::close(report);
}

TEST(StopSignals, SecondStopEndsTheProcessAtOnce) {
  int report = -1;
  const pid_t pid = stuckChild(true, report);
  ::kill(pid, SIGINT);
  char c = 0;
  ASSERT_EQ(::read(report, &c, 1), 1) << "the first one was taken";
  ::kill(pid, SIGINT);
  const int status = endOf(pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGINT);
  ::close(report);
}

}  // namespace
}  // namespace heaptrail::recorder
