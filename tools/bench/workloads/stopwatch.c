/* stopwatch: runs a command in this very process (execvp, so a tool that started
 * stopwatch is now tracing the command) and measures the command's lifetime, from
 * just before exec to its exit, leaving out the tool's own start-up and shutdown.
 *
 *   stopwatch OUTFILE CMD [ARGS...]
 *
 * A helper child, forked before exec, waits for this process to exit (pidfd) and
 * writes "elapsed_ns=N end_ns=T" into OUTFILE (T: CLOCK_MONOTONIC at the exit, to time
 * what a tool does after its target is gone). The helper makes no allocator calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: stopwatch OUTFILE CMD [ARGS...]\n");
		return 2;
	}
	int ready[2], start[2];
	if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(start, O_CLOEXEC) != 0) {
		perror("stopwatch: pipe");
		return 1;
	}
	const pid_t self = getpid();
	const pid_t helper = fork();
	if (helper < 0) {
		perror("stopwatch: fork");
		return 1;
	}
	if (helper == 0) {
		close(ready[0]);
		close(start[1]);
		const int pidfd = (int)syscall(SYS_pidfd_open, self, 0);
		const char ok = pidfd >= 0;
		if (write(ready[1], &ok, 1) != 1 || !ok)
			_exit(1);
		unsigned long long t0 = 0;
		if (read_full(start[0], &t0, sizeof t0) != 0)
			_exit(1);
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
		const unsigned long long t1 = now_ns();
		const int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			_exit(1);
		char line[96];
		const int len = snprintf(line, sizeof line, "elapsed_ns=%llu end_ns=%llu\n", t1 - t0, t1);
		const int ok2 = write(fd, line, (size_t)len) == len;
		close(fd);
		_exit(ok2 ? 0 : 1);
	}
	close(ready[1]);
	close(start[0]);
	char ok = 0;
	if (read_full(ready[0], &ok, 1) != 0 || !ok) {
		fprintf(stderr, "stopwatch: helper failed\n");
		return 1;
	}
	const unsigned long long t0 = now_ns();
	if (write(start[1], &t0, sizeof t0) != (ssize_t)sizeof t0)
		return 1;
	/* start[1] is close-on-exec: nothing else to tidy up. */
	execvp(argv[2], argv + 2);
	fprintf(stderr, "stopwatch: cannot run %s: %s\n", argv[2], strerror(errno));
	return 127;
}
