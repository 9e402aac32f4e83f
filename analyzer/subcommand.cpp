#include "analyzer/subcommand.h"

#include <kj/exception.h>

#include "analyzer/cli.h"
#include "common/safe_text.h"
#include "schema/trace_error.h"

namespace po = boost::program_options;

namespace heaptrail::analyzer {

po::variables_map parseSubcommandLine(const std::vector<std::string>& args, const po::options_description& visible,
                                      std::vector<std::string>& traces) {
  po::options_description all;
  all.add(visible).add_options()("trace", po::value<std::vector<std::string>>(&traces));
  po::positional_options_description positional;
  positional.add("trace", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return vm;
}

int runOnTrace(const std::string& command, const std::string& trace, std::ostream& err,
               const std::function<int()>& body) {
  try {
    return body();
  } catch (const schema::TraceError& e) {
    err << "heaptrail " << command << ": " << common::printable(e.what()) << "\n";
  } catch (const kj::Exception& e) {
    // A damaged record that got past the reader's checks: one line, never a crash.
    err << "heaptrail " << command << ": " << common::printable(trace) << ": corrupt trace: "
        << common::printable(e.getDescription().cStr()) << "\n";
  } catch (const std::exception& e) {
    err << "heaptrail " << command << ": " << common::printable(trace) << ": " << common::printable(e.what()) << "\n";
  }
  return kExitError;
}

}  // namespace heaptrail::analyzer
