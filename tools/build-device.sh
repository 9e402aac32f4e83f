#!/usr/bin/env bash
# Cross-builds heaptrail-record for a device: one statically linked binary, with its BPF
# programs embedded, that is copied to the device and needs no library there.
#
#   tools/build-device.sh aarch64|armhf [OUT_DIR]      (default OUT_DIR: build/device-ARCH)
#
# Installs what is missing on a Debian 12 machine (needs root then): Debian's cross
# toolchain, the build machine's clang/bpftool/capnp, and qemu-user-static for the final
# check. The target's libraries are never installed: their -dev packages are downloaded
# for the target architecture (`apt-get download`, which needs that architecture added to
# dpkg) and unpacked into OUT_DIR/sysroot, from which only static archives are linked.
# Prints the stripped binary's path and size, and runs its --help under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() { echo "usage: tools/build-device.sh aarch64|armhf [OUT_DIR]" >&2; exit 2; }
case ${1:-} in
  aarch64 | arm64) arch=aarch64 triplet=aarch64-linux-gnu debarch=arm64 qemu=qemu-aarch64-static ;;
  armhf) arch=armhf triplet=arm-linux-gnueabihf debarch=armhf qemu=qemu-arm-static ;;
  *) usage ;;
esac
out=$(realpath -m "${2:-build/device-$arch}")
jobs=${HEAPTRAIL_BUILD_JOBS:-2}

# The build machine's tools (same versions as the target's libraries: both bookworm).
host_packages=(cmake make pkg-config clang bpftool libbpf-dev capnproto libcapnp-dev
               "g++-$triplet" "binutils-$triplet" qemu-user-static)
# The target's libraries, unpacked into the sysroot. libssl-dev only because Cap'n Proto's
# CMake package looks for OpenSSL; nothing of it is linked.
target_packages=(libbpf-dev libelf-dev zlib1g-dev libzstd-dev libcapnp-dev
                 libboost-program-options1.74-dev libboost1.74-dev libssl-dev)

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "build-device: $1: run as root (or with sudo)" >&2
    exit 1
  fi
}

missing=()
for p in "${host_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
foreign=true
dpkg --print-foreign-architectures | grep -x "$debarch" >/dev/null || foreign=false
if ((${#missing[@]})) || ! $foreign; then
  need_root "installing ${missing[*]:-nothing} and adding the $debarch architecture"
  export DEBIAN_FRONTEND=noninteractive
  $foreign || dpkg --add-architecture "$debarch"
  # An index that fails to download (a mirror being synced) must not stop the build:
  # what is needed is checked below.
  apt-get update -qq || echo "build-device: apt-get update reported errors; going on" >&2
  if ((${#missing[@]})); then
    echo "build-device: installing ${missing[*]}" >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# Sysroot: the target's -dev packages, downloaded once and unpacked.
sysroot=$out/sysroot
mkdir -p "$sysroot/.debs"
for p in "${target_packages[@]}"; do
  compgen -G "$sysroot/.debs/${p}_*_${debarch}.deb" >/dev/null && continue
  if ! apt-cache show "$p:$debarch" >/dev/null 2>&1; then
    need_root "the $debarch package lists are missing (apt-get update)"
    apt-get update -qq || true
  fi
  echo "build-device: downloading $p:$debarch" >&2
  (cd "$sysroot/.debs" && apt-get download -qq -o APT::Sandbox::User=root "$p:$debarch")
  rm -f "$sysroot/.unpacked"
done
if [[ ! -e $sysroot/.unpacked ]]; then
  for deb in "$sysroot"/.debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  touch "$sysroot/.unpacked"
fi

cmake -S "$root" -B "$out/build" \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/device-toolchain.cmake" \
  -DHEAPTRAIL_DEVICE_TRIPLET="$triplet" -DHEAPTRAIL_DEVICE_SYSROOT="$sysroot" \
  -DHEAPTRAIL_DEVICE=ON -DCMAKE_BUILD_TYPE=MinSizeRel >"$out/cmake.log" ||
  { cat "$out/cmake.log" >&2; exit 1; }
cmake --build "$out/build" --target heaptrail-record -j"$jobs"
"$triplet-strip" --strip-all -o "$out/heaptrail-record" "$out/build/bin/heaptrail-record"

if "$triplet-readelf" -d "$out/heaptrail-record" 2>/dev/null | grep NEEDED >/dev/null; then
  echo "build-device: $out/heaptrail-record is not statically linked" >&2
  exit 1
fi
size=$(stat -c %s "$out/heaptrail-record")
echo "build-device: $out/heaptrail-record ($arch, static, stripped): $size bytes ($((size / 1024)) KiB)"
if command -v "$qemu" >/dev/null; then
  "$qemu" "$out/heaptrail-record" --help >/dev/null
  echo "build-device: --help runs under $qemu"
fi
