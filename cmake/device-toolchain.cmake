# Cross toolchain for a device build of heaptrail-record (tools/build-device.sh):
# Debian's cross compiler for HEAPTRAIL_DEVICE_TRIPLET (its own C library and UAPI
# headers under /usr/<triplet>) plus the target's -dev packages unpacked into
# HEAPTRAIL_DEVICE_SYSROOT, of which only the static archives are linked.
#   cmake -DCMAKE_TOOLCHAIN_FILE=cmake/device-toolchain.cmake
#         -DHEAPTRAIL_DEVICE_TRIPLET=aarch64-linux-gnu -DHEAPTRAIL_DEVICE_SYSROOT=DIR ...
if(NOT HEAPTRAIL_DEVICE_TRIPLET OR NOT HEAPTRAIL_DEVICE_SYSROOT)
  message(FATAL_ERROR "set HEAPTRAIL_DEVICE_TRIPLET and HEAPTRAIL_DEVICE_SYSROOT (see tools/build-device.sh)")
endif()
# try_compile projects re-read this file: hand them the same settings.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES HEAPTRAIL_DEVICE_TRIPLET HEAPTRAIL_DEVICE_SYSROOT)

set(triplet ${HEAPTRAIL_DEVICE_TRIPLET})
set(sysroot ${HEAPTRAIL_DEVICE_SYSROOT})

set(CMAKE_SYSTEM_NAME Linux)
if(triplet MATCHES "^aarch64")
  set(CMAKE_SYSTEM_PROCESSOR aarch64)
elseif(triplet MATCHES "^arm")
  set(CMAKE_SYSTEM_PROCESSOR armv7l)
else()
  message(FATAL_ERROR "no device build for ${triplet}")
endif()
set(CMAKE_C_COMPILER ${triplet}-gcc)
set(CMAKE_CXX_COMPILER ${triplet}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${triplet})

# The -dev packages' headers (the cross compiler brings libc's); -L for their archives.
set(CMAKE_C_FLAGS_INIT "-isystem ${sysroot}/usr/include/${triplet} -isystem ${sysroot}/usr/include")
set(CMAKE_CXX_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-L${sysroot}/usr/lib/${triplet} -L${sysroot}/lib/${triplet}")

set(CMAKE_FIND_ROOT_PATH /usr/${triplet} ${sysroot})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # capnp, clang, bpftool: the build machine's
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Static archives only: the binary must run on a device that has none of these libraries.
set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
set(Boost_USE_STATIC_LIBS ON)

set(ENV{PKG_CONFIG_LIBDIR} "${sysroot}/usr/lib/${triplet}/pkgconfig:${sysroot}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${sysroot}")
set(ENV{PKG_CONFIG_PATH} "")

# The BPF objects read the target's register layout from its asm/ptrace.h.
set(HEAPTRAIL_BPF_UAPI_INCLUDE /usr/${triplet}/include CACHE PATH "target UAPI headers")
