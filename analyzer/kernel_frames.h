// Kernel frames of a kernel recording (Header.kernel): function names from the trace's
// kallsyms snapshot, and file:line from a vmlinux with DWARF when one is given
// (--vmlinux) or found by the kernel's build-id.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "analyzer/leak_report.h"
#include "schema/trace.capnp.h"

namespace heaptrail::analyzer {

struct KernelFrameOptions {
  std::filesystem::path vmlinux;                  // --vmlinux; empty: look it up by build-id
  std::vector<std::filesystem::path> debugDirs;   // --debug-dir, searched first
  std::filesystem::path sysroot;                  // --sysroot: the recorded machine's files
  bool systemDirs = true;                         // also /usr/lib/debug, /boot, /lib/modules
  bool debuginfod = true;                         // then the servers in $DEBUGINFOD_URLS, by build-id
};

class KernelFrames {
 public:
  // nullptr when the trace recorded no kernel allocations.
  static std::unique_ptr<KernelFrames> fromHeader(schema::Header::Reader header, const KernelFrameOptions& options);

  // Kernel addresses are the upper half of the address space (64-bit), above 3 GiB on 32-bit arm.
  bool isKernelAddress(uint64_t address) const { return address >= kernelSpaceStart_; }
  // `address` as recorded (a return address: the call is looked up). `resolver` gives
  // file:line from the vmlinux; empty: kallsyms names only.
  Frame resolve(uint64_t address, const FrameResolver& resolver) const;

  // How many frames at the top of a recorded kernel stack belong to the tracing machinery
  // (the BPF program, bpf_trace_run*, __traceiter_*), not to the code that allocated.
  size_t machineryFrames(std::span<const uint64_t> frames) const;

  // Why kernel frames may lack names or lines (kptr_restrict, no vmlinux), for the report.
  const std::vector<std::string>& notes() const { return notes_; }
  const std::filesystem::path& vmlinux() const { return vmlinuxPath_; }

 private:
  KernelFrames() = default;
  void findVmlinux(const KernelFrameOptions& options, const std::string& release);
  // The index of the symbol holding `address`, or -1.
  long symbolAt(uint64_t address) const;

  uint64_t kernelSpaceStart_ = 0x8000000000000000ull;
  std::string buildId_;
  uint64_t textStart_ = 0;
  std::vector<uint64_t> addresses_;
  std::vector<uint32_t> nameOffsets_;
  std::string names_;
  std::vector<uint16_t> modules_;
  struct Module {
    std::string name;
    uint64_t base = 0, size = 0;
    std::string buildId;
  };
  std::vector<Module> moduleList_;
  std::vector<std::string> notes_;
  // The vmlinux used for file:line, and how its addresses relate to the running kernel's.
  std::filesystem::path vmlinuxPath_;
  int64_t kaslrOffset_ = 0;  // running address - vmlinux address
  struct Segment {
    uint64_t vaddr = 0, size = 0, offset = 0;
  };
  std::vector<Segment> segments_;
};

}  // namespace heaptrail::analyzer
