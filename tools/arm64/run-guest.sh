#!/usr/bin/env bash
# Records the leaky sample on an emulated arm64 device and brings the traces back:
# Debian's arm64 kernel boots under qemu-system-aarch64 (TCG, -M virt -cpu max) with a
# small initramfs holding the static device recorder (tools/build-device.sh), a static
# busybox, the cross toolchain's glibc and arm64 builds of the samples; its /init
# (guest_init.sh) records `-- cmd` and `-p` and prints the traces in base64 on the serial
# console, which this script decodes.
#
#   tools/arm64/run-guest.sh WORK_DIR
#   tools/arm64/run-guest.sh WORK_DIR 'COMMAND'   (e.g. '/heaptrail-record -v -- /samples/leaky')
#
# With a COMMAND, the guest runs only that shell command (in /tmp, the samples under
# /samples) instead of the recordings, and its output is printed here (WORK_DIR/out/only.log):
# a quick way to see the verifier's log (-v) or a recorder message on the 6.1 kernel.
#
# WORK_DIR/cache keeps the downloaded kernel and busybox between runs; WORK_DIR/rootfs is
# the guest's root, which is also the sysroot to analyze the traces with; WORK_DIR/out gets
# cmd.htr, release.htr, forks.htr, pid.htr, nofp_chain.htr, nofp_strings.htr, nofp_dlopen.htr, fp.htr, cmd.bundle, their recorder logs (*.log), status (one "HT-STATUS name code" line per
# recording) and console.log. The device recorder is built into WORK_DIR/../device-aarch64.
# Exit status: 0 the guest ran, 77 it cannot run on this machine (the reason on stderr),
# 1 anything else failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[[ $# -eq 1 || $# -eq 2 ]] || { echo "usage: tools/arm64/run-guest.sh WORK_DIR ['COMMAND']" >&2; exit 2; }
work=$(realpath -m "$1")
only=${2:-}
triplet=aarch64-linux-gnu
debarch=arm64

cannot() { echo "arm64 guest: cannot run: $*" >&2; exit 77; }
fail() { echo "arm64 guest: $*" >&2; exit 1; }

for tool in qemu-system-aarch64 "$triplet-gcc" "$triplet-g++" cpio apt-get dpkg-deb pkg-config clang capnp; do
  command -v "$tool" >/dev/null || cannot "$tool is not installed (tools/setup.sh installs it)"
done
dpkg --print-foreign-architectures | grep -x $debarch >/dev/null ||
  cannot "dpkg has no $debarch architecture to download the kernel with (tools/setup.sh adds it)"

cache=$work/cache
rootfs=$work/rootfs
out=$work/out
mkdir -p "$cache"
rm -rf "$rootfs" "$out"
mkdir -p "$rootfs"/{bin,samples,lib/$triplet} "$out"

# Debian's arm64 kernel (it has BTF, uprobes and the BPF ring buffer built in: no
# module is needed) and static busybox, downloaded once.
fetch_deb() {  # PACKAGE -> path of the downloaded .deb
  local package=$1
  (cd "$cache" && apt-get download -qq -o APT::Sandbox::User=root "$package:$debarch") >/dev/null 2>&1 ||
    cannot "apt-get download $package:$debarch failed (no network or no $debarch package lists: run apt-get update)"
  compgen -G "$cache/${package}_*_$debarch.deb" | head -n 1
}
kernel=$(compgen -G "$cache/vmlinuz-*" | head -n 1 || true)
if [[ -z $kernel ]]; then
  image=$(apt-cache depends "linux-image-$debarch:$debarch" 2>/dev/null | awk '/Depends:/ { print $2; exit }')
  [[ -n $image ]] || cannot "no linux-image-$debarch:$debarch package known to apt (apt-get update)"
  image=${image%:*}
  deb=$(fetch_deb "$image")
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache" --strip-components=2 --wildcards './boot/vmlinuz-*'
  rm -f "$deb"
  kernel=$(compgen -G "$cache/vmlinuz-*" | head -n 1)
fi
if [[ ! -x $cache/busybox ]]; then
  deb=$(fetch_deb busybox-static)
  dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./bin/busybox >"$cache/busybox"
  chmod +x "$cache/busybox"
  rm -f "$deb"
fi

# The device recorder (incremental after the first build).
device=$work/../device-aarch64
"$root/tools/build-device.sh" aarch64 "$device" >"$work/build-device.log" 2>&1 ||
  fail "tools/build-device.sh aarch64 failed: $(tail -n 5 "$work/build-device.log")"

# arm64 builds of the samples, built as the x86 ones are (frame pointers, debug info).
flags=(-g -O0 -fno-omit-frame-pointer -w)
"$triplet-gcc" "${flags[@]}" "$root/samples/leaky.c" -o "$rootfs/samples/leaky"
"$triplet-gcc" "${flags[@]}" -Dmain=sample_main -c "$root/samples/leaky.c" -o "$work/leaky_attach.o"
"$triplet-gcc" "${flags[@]}" -I"$root" "$here/start_on_input.c" "$work/leaky_attach.o" -o "$rootfs/samples/leaky_attach"
# Built like distribution code, as the x86 ones are (samples/CMakeLists.txt): only their
# call-frame information unwinds them.
nofp=(-g -O2 -fomit-frame-pointer -w -I"$root/samples")
"$triplet-gcc" "${nofp[@]}" "$root/samples/nofp_chain.c" -o "$rootfs/samples/nofp_chain"
"$triplet-g++" "${nofp[@]}" -std=c++17 -fno-implicit-templates "$root/samples/nofp_strings.cpp" \
  -o "$rootfs/samples/nofp_strings"
"$triplet-gcc" "${nofp[@]}" -shared -fPIC "$root/samples/nofp_plugin.c" -o "$rootfs/samples/libnofp_plugin.so"
"$triplet-gcc" "${nofp[@]}" "$root/samples/nofp_dlopen.c" -o "$rootfs/samples/nofp_dlopen"

cp "$device/heaptrail-record" "$rootfs/heaptrail-record"
cp "$cache/busybox" "$rootfs/bin/busybox"
install -m 755 "$here/guest_init.sh" "$rootfs/init"
[[ -n $only ]] && printf '%s\n' "$only" >"$rootfs/only.sh"
for lib in ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libstdc++.so.6 libgcc_s.so.1; do
  cp -L "/usr/$triplet/lib/$lib" "$rootfs/lib/$triplet/$lib"
done
ln -s "$triplet/ld-linux-aarch64.so.1" "$rootfs/lib/ld-linux-aarch64.so.1"
(cd "$rootfs" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

# pauth-impdef: the same pointer authentication, with QEMU's fast hash instead of QARMA.
start=$(date +%s)
status=0
timeout "${HEAPTRAIL_ARM64_TIMEOUT:-900}" nice -n 10 qemu-system-aarch64 \
  -M virt -cpu max,pauth-impdef=on -smp 1 -m 1024 \
  -display none -monitor none -serial stdio -nic none -no-reboot \
  -kernel "$kernel" -initrd "$work/initramfs.cpio" \
  -append "console=ttyAMA0 quiet loglevel=1 panic=-1 rdinit=/init" \
  </dev/null >"$out/console.log" 2>"$out/qemu.err" || status=$?
echo "arm64 guest: $(basename "$kernel"), qemu ran $(($(date +%s) - start)) s (exit $status)" >&2
[[ $status -eq 124 ]] && fail "the guest did not finish in time; console tail: $(tail -n 20 "$out/console.log")"
[[ $status -ne 0 ]] && fail "qemu-system-aarch64 failed (exit $status): $(head -n 3 "$out/qemu.err")"
grep -q HT-DONE "$out/console.log" ||
  fail "the guest stopped before the end; console tail: $(tail -n 30 "$out/console.log" | tr -d '\r')"

# Decode the console: traces between HT-FILE-BEGIN/END, logs between HT-LOG-BEGIN/END.
tr -d '\r' <"$out/console.log" | awk -v out="$out" '
  /^HT-FILE-BEGIN / { file = out "/" $2 ".b64"; printf "" > file; mode = "file"; next }
  /^HT-FILE-END /   { close(file); mode = ""; next }
  /^HT-LOG-BEGIN /  { file = out "/" $2 ".log"; printf "" > file; mode = "log"; next }
  /^HT-LOG-END /    { close(file); mode = ""; next }
  /^HT-STATUS /     { print > (out "/status"); next }
  /^HT-GUEST /      { print > (out "/guest"); next }
  mode == "file" && /^[A-Za-z0-9+\/=]+$/ { print >> file; next }
  mode == "log" { print >> file }
'
for b64 in "$out"/*.b64; do
  [[ -e $b64 ]] || continue
  base64 -d "$b64" >"${b64%.b64}"
  rm "$b64"
done
cat "$out/guest" "$out/status" >&2
if [[ -n $only ]]; then
  cat "$out/only.log" >&2
  grep -q '^HT-STATUS only 0$' "$out/status"
fi
