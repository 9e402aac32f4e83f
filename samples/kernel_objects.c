// Makes the kernel allocate and keep memory on its behalf in a known way, for the
// kernel-mode tests. N = argv[1] (default 16). It prints "ready" and waits for a line on
// stdin; opens N eventfds (KERNEL:eventfd), prints "eventfds" and waits for a line; opens
// N pipes (KERNEL:pipe) and N UNIX stream socket pairs (KERNEL:socketpair); closes the
// first N/2 of each kind; prints "holding" and waits for a line (or the end) on stdin,
// then exits, which closes the rest. So while it holds: N/2 of each object are
// outstanding kernel allocations, the other N/2 were allocated and freed.
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_OBJECTS 4096

static void wait_for_line(const char* said) {
  printf("%s\n", said);
  fflush(stdout);
  char line[64];
  ssize_t n;
  do n = read(0, line, sizeof line);
  while (n > 0 && line[n - 1] != '\n');
}

static void die(const char* what) {
  perror(what);
  exit(1);
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 16;
  if (n < 2 || n > MAX_OBJECTS) n = 16;
  static int events[MAX_OBJECTS], pipes[MAX_OBJECTS][2], sockets[MAX_OBJECTS][2];

  wait_for_line("ready");
  for (int i = 0; i < n; ++i)
    if ((events[i] = eventfd(0, EFD_CLOEXEC)) < 0) die("eventfd");  // KERNEL:eventfd
  wait_for_line("eventfds");
  for (int i = 0; i < n; ++i)
    if (pipe(pipes[i]) != 0) die("pipe");  // KERNEL:pipe
  for (int i = 0; i < n; ++i)
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sockets[i]) != 0) die("socketpair");  // KERNEL:socketpair
  for (int i = 0; i < n / 2; ++i) {
    close(events[i]);
    close(pipes[i][0]);
    close(pipes[i][1]);
    close(sockets[i][0]);
    close(sockets[i][1]);
  }
  wait_for_line("holding");
  return 0;
}
