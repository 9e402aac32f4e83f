// pprof's profile.proto (gzipped), as `go tool pprof`, Grafana/Pyroscope and speedscope
// read it: the sample types of Go's heap profiles (alloc_objects, alloc_space, inuse_objects,
// inuse_space; inuse_space shown by default), one location per return address with its
// inlined calls as lines, mappings with build-ids.
#pragma once

#include <ostream>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer::report {

// Writes the gzipped protobuf to `out` (binary). Throws std::runtime_error when
// serialization fails.
void writePprof(std::ostream& out, const LeakReport& report);

}  // namespace heaptrail::analyzer::report
