// Why `-- COMMAND` cannot run, said before anything is attached: "no allocator found"
// is the wrong answer for a directory, a text file or a script whose interpreter is
// missing.
#pragma once

#include <filesystem>

namespace heaptrail::recorder {

// The ELF program the kernel loads to run `executable`: the file itself, or for a
// script (#!) its interpreter (and so on, for an interpreter that is a script).
// Throws RecordError saying precisely why the command cannot run.
std::filesystem::path programToRun(const std::filesystem::path& executable);

}  // namespace heaptrail::recorder
