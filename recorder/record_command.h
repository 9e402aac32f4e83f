#pragma once

#include <string>
#include <vector>

namespace heaptrail::recorder {

// The whole `heaptrail-record` command: parse args, record, print the summary. Returns
// the exit code (0 ok, 1 error, 2 usage).
int recordMain(const std::vector<std::string>& args, const std::string& program);

}  // namespace heaptrail::recorder
