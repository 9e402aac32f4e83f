// Converts a trace file into the fuzzer's raw format (see raw_trace.h):
//   raw_seed TRACE.htr OUT.raw
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include <zstd.h>

#include "schema/trace_format.h"
#include "tests/fuzz/raw_trace.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: raw_seed TRACE.htr OUT.raw\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  std::string out(heaptrail::fuzz::kRawMagic);
  size_t at = heaptrail::schema::kPreambleSize;
  while (at < bytes.size()) {
    const size_t n = ZSTD_findFrameCompressedSize(bytes.data() + at, bytes.size() - at);
    if (ZSTD_isError(n)) break;
    const unsigned long long size = ZSTD_getFrameContentSize(bytes.data() + at, n);
    std::string plain(size, '\0');
    if (ZSTD_isError(ZSTD_decompress(plain.data(), plain.size(), bytes.data() + at, n))) break;
    const uint32_t length = static_cast<uint32_t>(plain.size());
    out.append(reinterpret_cast<const char*>(&length), 4);
    out += plain;
    at += n;
  }
  std::ofstream(argv[2], std::ios::binary) << out;
  return 0;
}
