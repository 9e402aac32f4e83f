// recode: rewrites a trace in the current schema with chosen encoding options and prints
// its size, to measure what each idea of the encoding earns on a real recording
// (BENCHMARKS.md, "Trace size"):
//   recode IN OUT [--time-resolution NS] [--no-release-refs] [--no-allocation-prediction]
//                 [--window N] [--infos N] [--level L] [--merge N] [--coding C] [--release-ranks R]
// --merge N writes one chunk per N chunks read (what larger chunks would earn).
#include <cstdio>
#include <cstring>
#include <string>

#include "analyzer/convert.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: recode IN OUT [--time-resolution NS] [--no-release-refs] "
                         "[--no-allocation-prediction] [--window N] [--infos N] [--level L] [--merge N] [--coding C] "
                         "[--release-ranks R]\n");
    return 2;
  }
  heaptrail::schema::EncodingOptions o;
  o.timeResolutionNs = heaptrail::schema::kDefaultTimeResolutionNs;
  int level = heaptrail::schema::TraceWriter::kDefaultCompressionLevel;
  unsigned merge = 1;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::stoull(argv[++i]) : 0ull; };
    if (a == "--time-resolution") o.timeResolutionNs = next();
    else if (a == "--no-release-refs") o.releaseReferences = false;
    else if (a == "--no-allocation-prediction") o.allocationPrediction = false;
    else if (a == "--window") o.allocationWindow = static_cast<uint32_t>(next());
    else if (a == "--infos") o.maxInfos = static_cast<uint32_t>(next());
    else if (a == "--level") level = static_cast<int>(next());
    else if (a == "--merge") merge = static_cast<unsigned>(next());
    else if (a == "--coding") o.coding = static_cast<uint32_t>(next());
    else if (a == "--release-ranks") o.releaseRanks = static_cast<uint32_t>(next());
    else {
      std::fprintf(stderr, "recode: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const auto r = heaptrail::analyzer::convertTrace(argv[1], argv[2], o, level, merge);
  std::printf("events=%llu chunks=%llu bytes=%llu bytes_per_event=%.3f\n", static_cast<unsigned long long>(r.events),
              static_cast<unsigned long long>(r.chunks), static_cast<unsigned long long>(r.bytesWritten),
              r.events ? static_cast<double>(r.bytesWritten) / static_cast<double>(r.events) : 0.0);
  return 0;
}
