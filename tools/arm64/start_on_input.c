// Runs a sample's main (compiled in with -Dmain=sample_main) only after a line arrives on
// stdin, so that a recorder can attach with -p first: it prints "ready" once it waits,
// which is the harness's signal to attach (samples/stdin_gate.h). Used by the emulated
// device test (tools/arm64/run-guest.sh).
#include "samples/stdin_gate.h"

int sample_main(void);

int main(void) {
  wait_for_stdin();
  return sample_main();
}
