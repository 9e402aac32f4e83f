// The `heaptrail` command line: subcommand dispatch and the shared error conventions
// (exit 0 ok, 1 error, 2 usage; one-line messages on stderr).
#pragma once

#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace heaptrail::analyzer {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// A command line that cannot be used; what() is the one-line message.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `args` excludes the program name. Output goes to `out`/`err`, except for `record`,
// which writes to the process's own stdout/stderr.
int heaptrailMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

int analyzeMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int diffMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int infoMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace heaptrail::analyzer
