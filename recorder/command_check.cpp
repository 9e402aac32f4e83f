#include "recorder/command_check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/safe_open.h"
#include "common/safe_text.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

constexpr int kMaxInterpreterDepth = 4;  // the kernel's limit of scripts interpreted by scripts

std::string quoted(const std::filesystem::path& path) { return common::printable(path.string()); }

// Empty when `file` can be executed; otherwise why not.
std::string notExecutable(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return errno == ENOENT ? "it does not exist" : std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return "it is a directory";
  if (!S_ISREG(st.st_mode)) return "it is not a regular file";
  if (::access(file.c_str(), X_OK) != 0) return "it is not executable (no x permission)";
  return {};
}

// The interpreter named by a "#!" line, "" if the line names none.
std::string interpreterOf(const std::string& head) {
  const size_t lineEnd = head.find('\n');
  const std::string line = head.substr(2, lineEnd == std::string::npos ? std::string::npos : lineEnd - 2);
  const size_t start = line.find_first_not_of(" \t");
  if (start == std::string::npos) return {};
  return line.substr(start, line.find_first_of(" \t\r", start) - start);
}

}  // namespace

std::filesystem::path programToRun(const std::filesystem::path& executable) {
  std::filesystem::path file = executable;
  for (int depth = 0; depth <= kMaxInterpreterDepth; ++depth) {
    if (const auto why = notExecutable(file); !why.empty()) {
      if (depth == 0) throw RecordError("cannot run " + quoted(executable) + ": " + why);
      throw RecordError("cannot run " + quoted(executable) + ": its interpreter " + quoted(file) + " cannot run: " +
                        why);
    }
    const common::UniqueFd fd = common::openRegular(file);
    if (!fd) throw RecordError("cannot run " + quoted(file) + ": " + common::openErrorText(errno));
    char buffer[256];
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    const std::string head(buffer, n > 0 ? static_cast<size_t>(n) : 0);
    if (head.starts_with("\x7f" "ELF")) return file;
    if (!head.starts_with("#!")) {
      if (depth == 0)
        throw RecordError("cannot run " + quoted(executable) +
                          ": it is neither an ELF program nor a script starting with #! (run a shell script "
                          "without #! as: -- sh " + quoted(executable) + ")");
      throw RecordError("cannot run " + quoted(executable) + ": its interpreter " + quoted(file) +
                        " is not an ELF program");
    }
    const std::string interpreter = interpreterOf(head);
    if (interpreter.empty()) throw RecordError("cannot run " + quoted(file) + ": its #! line names no interpreter");
    file = interpreter;
  }
  throw RecordError("cannot run " + quoted(executable) + ": too many levels of #! interpreters");
}

}  // namespace heaptrail::recorder
