// What a kernel recording keeps about the running kernel so that its stacks can be
// symbolized offline: /proc/kallsyms, the kernel's build-id and release, the modules.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "schema/trace.capnp.h"

namespace heaptrail::recorder {

struct KernelModuleInfo {
  std::string name;
  uint64_t base = 0;  // 0 when hidden by kptr_restrict
  uint64_t size = 0;
  std::string buildId;  // raw bytes
};

struct KernelSnapshot {
  std::string release;
  std::string buildId;    // raw bytes, empty if unknown
  int kptrRestrict = -1;  // -1: unreadable
  bool symbolsHidden = false;
  uint64_t textStart = 0;  // `_text`
  // Text symbols sorted by address; module 0 is the kernel image, else 1 + modules index.
  std::vector<uint64_t> symbolAddresses;
  std::string symbolNames;  // NUL-terminated names, in order
  std::vector<uint16_t> symbolModules;
  std::vector<KernelModuleInfo> modules;
};

// Where the snapshot is read from: the real /proc and /sys, or a directory laid out the
// same way (tests).
struct KernelPaths {
  std::filesystem::path kallsyms = "/proc/kallsyms";
  std::filesystem::path modules = "/proc/modules";
  std::filesystem::path notes = "/sys/kernel/notes";
  std::filesystem::path moduleDir = "/sys/module";
  std::filesystem::path kptrRestrict = "/proc/sys/kernel/kptr_restrict";
};

KernelSnapshot takeKernelSnapshot(const KernelPaths& paths = {});

// The GNU build-id in a block of ELF notes as the kernel exports them (/sys/kernel/notes,
// /sys/module/NAME/notes/.note.gnu.build-id); "" when there is none.
std::string buildIdFromKernelNotes(const std::string& notes);

// Fills the header's KernelInfo from the snapshot (everything but the recording options).
void writeKernelSnapshot(schema::KernelInfo::Builder out, const KernelSnapshot& snapshot);

}  // namespace heaptrail::recorder
