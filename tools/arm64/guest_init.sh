#!/bin/busybox sh
# /init of the emulated device (tools/arm64/run-guest.sh): records the leaky sample twice,
# as `-- cmd` and with `-p` attached to a running process, and writes each trace and the
# recorder's output to the serial console in base64 between marker lines, then powers
# off (and with --release-stacks, and --follow-forks through a shell; and a bundle of the
# first trace's files; and the samples built without frame pointers, nofp_chain and
# nofp_strings, nofp_dlopen, whose stacks only the unwind tables can walk; leaky with
# --stack-mode fp).
# With /only.sh (run-guest.sh WORK_DIR 'COMMAND') it runs that command alone. Nothing
# here waits a fixed time: each step waits for the condition it needs.
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
echo "HT-GUEST $(uname -m) $(uname -r) btf=$([ -e /sys/kernel/btf/vmlinux ] && echo yes || echo no)"

cd /tmp
if [ -s /only.sh ]; then  # run-guest.sh WORK_DIR 'COMMAND': that command alone
  sh /only.sh >/tmp/only.log 2>&1
  echo "HT-STATUS only $?"
  echo "HT-LOG-BEGIN only"; cat /tmp/only.log; echo "HT-LOG-END only"
  echo "HT-DONE"
  sync
  poweroff -f
fi

/heaptrail-record -o /tmp/cmd.htr -- /samples/leaky >/tmp/cmd.log 2>&1
echo "HT-STATUS cmd $?"
# The files that trace names, packed here for the workstation (analyzed without the rootfs).
/heaptrail-record bundle /tmp/cmd.htr -o /tmp/cmd.bundle >/tmp/bundle.log 2>&1
echo "HT-STATUS bundle $?"
# Stacks taken at a function's entry (frees): the return address is still in x30.
/heaptrail-record --release-stacks -o /tmp/release.htr -- /samples/leaky >/tmp/release.log 2>&1
echo "HT-STATUS release $?"
# --follow-forks traces the shell with ptrace (its child is held until hooked): a shell that
# starts leaky in a child (`; true` keeps the shell from exec'ing it in place). The shell
# is static busybox, without malloc: --obj names the child's allocator.
/heaptrail-record --follow-forks --obj /lib/aarch64-linux-gnu/libc.so.6 -o /tmp/forks.htr \
  -- /bin/sh -c "/samples/leaky; true" >/tmp/forks.log 2>&1
echo "HT-STATUS forks $?"

# Built -O2 -fomit-frame-pointer: stacks only the unwind tables (.eh_frame) can walk.
/heaptrail-record -v -o /tmp/nofp_chain.htr -- /samples/nofp_chain >/tmp/nofp_chain.log 2>&1
echo "HT-STATUS nofp_chain $?"
/heaptrail-record -v -o /tmp/nofp_strings.htr -- /samples/nofp_strings >/tmp/nofp_strings.log 2>&1
echo "HT-STATUS nofp_strings $?"
# A plugin without frame pointers that leaks right after its dlopen, before the recorder
# has its table: the walk is finished by the recorder from a copy of the stack.
/heaptrail-record -v -o /tmp/nofp_dlopen.htr -- /samples/nofp_dlopen /samples/libnofp_plugin.so \
  >/tmp/nofp_dlopen.log 2>&1
echo "HT-STATUS nofp_dlopen $?"
# --stack-mode fp: the walker's frame-pointer step (the frame record {x29, x30} at x29).
/heaptrail-record --stack-mode fp -o /tmp/fp.htr -- /samples/leaky >/tmp/fp.log 2>&1
echo "HT-STATUS fp $?"

# -p: the target prints "ready" and blocks on its stdin (a FIFO opened read-write, which
# does not block); the recorder attaches; once it has written the trace's header (after
# its probes are attached), the target is released.
mkfifo /tmp/go
/samples/leaky_attach 0<>/tmp/go >/tmp/target.out 2>&1 &
target=$!
n=0
until [ -s /tmp/target.out ]; do  # it printed "ready"
  n=$((n + 1)); [ $n -gt 3000 ] && break; usleep 10000
done
/heaptrail-record -p "$target" -o /tmp/pid.htr >/tmp/pid.log 2>&1 &
recorder=$!
n=0
until [ -s /tmp/pid.htr ]; do
  n=$((n + 1)); [ $n -gt 6000 ] && break
  kill -0 "$recorder" 2>/dev/null || break
  usleep 10000
done
echo go 1<>/tmp/go   # read-write: never blocks, even if the target is gone
wait "$recorder"
echo "HT-STATUS pid $?"
echo "HT-LOG-BEGIN target"; cat /tmp/target.out; echo "HT-LOG-END target"

for name in cmd release forks pid nofp_chain nofp_strings nofp_dlopen fp; do
  echo "HT-LOG-BEGIN $name"
  cat /tmp/$name.log
  echo "HT-LOG-END $name"
  if [ -s /tmp/$name.htr ]; then
    echo "HT-FILE-BEGIN $name.htr"
    base64 /tmp/$name.htr
    echo "HT-FILE-END $name.htr"
  fi
done
echo "HT-LOG-BEGIN bundle"; cat /tmp/bundle.log; echo "HT-LOG-END bundle"
if [ -s /tmp/cmd.bundle ]; then
  echo "HT-FILE-BEGIN cmd.bundle"
  base64 /tmp/cmd.bundle
  echo "HT-FILE-END cmd.bundle"
fi
echo "HT-DONE"
sync
poweroff -f
