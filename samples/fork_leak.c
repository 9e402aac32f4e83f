// Forks; the child leaks one 12012-byte block as the very first thing it does and
// exits; the parent waits for it, then leaks one 12112-byte block. With
// --follow-forks both leaks are recorded, the child's under the child's pid.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void* volatile sink;

int main(void) {
  const pid_t child = fork();
  if (child == 0) {
    sink = malloc(12012);  // ALLOC:child_leak
    _exit(0);
  }
  waitpid(child, NULL, 0);
  sink = malloc(12112);  // ALLOC:parent_leak
  return 0;
}
