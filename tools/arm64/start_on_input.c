// Runs a sample's main (compiled in with -Dmain=sample_main) only after one line arrives
// on stdin, so that a recorder can attach with -p first: it says "ready" on stdout once
// it is blocked waiting, which is the harness's signal to attach. Used by the emulated
// device test (tools/arm64/run-guest.sh).
#include <stdio.h>
#include <unistd.h>

int sample_main(void);

int main(void) {
  printf("ready\n");
  fflush(stdout);
  char c;
  while (read(0, &c, 1) == 1 && c != '\n') {
  }
  return sample_main();
}
