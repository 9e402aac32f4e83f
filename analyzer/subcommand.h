// What every `heaptrail` subcommand shares: its options parsed with TRACE files as
// positional arguments, and the one-line error for each way a trace can fail.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

namespace heaptrail::analyzer {

// Parses `args` against `visible` plus the positional trace files, which land in
// `traces`. Throws UsageError for options that do not parse.
boost::program_options::variables_map parseSubcommandLine(const std::vector<std::string>& args,
                                                          const boost::program_options::options_description& visible,
                                                          std::vector<std::string>& traces);

// Runs `body` and turns what it throws into one line on `err` ("heaptrail COMMAND:
// TRACE: what") and exit status 1: unreadable or damaged traces never crash a command.
int runOnTrace(const std::string& command, const std::string& trace, std::ostream& err,
               const std::function<int()>& body);

}  // namespace heaptrail::analyzer
