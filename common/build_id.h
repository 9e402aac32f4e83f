// GNU build-ids (NT_GNU_BUILD_ID notes) of ELF files: how a recorded module is matched
// with a file on the workstation.
#pragma once

#include <libelf.h>

#include <filesystem>
#include <string>

namespace heaptrail::common {

// The build-id in a block of ELF notes; "" when there is none.
std::string buildIdFromNotes(Elf_Data* notes);
// The build-id of an open ELF file, from its PT_NOTE segments (what the loader maps, so
// also in stripped files without section headers), else from SHT_NOTE sections.
std::string buildIdOf(Elf* elf);
// The build-id of the ELF file at `path`; "" when it has none or cannot be read.
std::string readBuildId(const std::filesystem::path& path);
// The build-id of the open ELF file `fd` (which stays open).
std::string readBuildId(int fd);

}  // namespace heaptrail::common
