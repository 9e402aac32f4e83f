// Writes the hostile traces of tests/support/crafted_trace.h into a directory, as seeds
// that start the fuzzer at the reader's limits (tools/fuzz.sh):
//   crafted_seeds DIR
#include <filesystem>
#include <iostream>

#include "schema/trace_format.h"
#include "tests/support/crafted_trace.h"

using namespace heaptrail::testing;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: crafted_seeds DIR\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  constexpr uint64_t kStart = 1'000'000'000, kMs = 1'000'000;
  {
    CraftedTrace t(dir / "crafted-many-headers.htr");  // records of the wrong kind
    t.extraHeaders(300).malloc(kStart + kMs, 0x1000, 100);
    t.footer(kStart + 2 * kMs);
  }
  {
    CraftedTrace t(dir / "crafted-lying-frames.htr");  // frames that claim huge sizes
    t.malloc(kStart + kMs, 0x1000, 100);
  }
  std::string frames;
  for (int i = 0; i < 20; ++i) frames += lyingZstdFrame(heaptrail::schema::kMaxRecordBytes - 4096, 128 * 1024);
  frames += lyingZstdFrame(heaptrail::schema::kMaxRecordBytes, heaptrail::schema::kMaxRecordBytes + 4096);
  appendBytes(dir / "crafted-lying-frames.htr", frames);
  {
    CraftedTrace t(dir / "crafted-long-path.htr");  // a text far over the bound
    t.hugeMappingPath(kStart + kMs, 1 << 20).malloc(kStart + 2 * kMs, 0x1000, 100);
    t.footer(kStart + 3 * kMs);
  }
  for (const char* name : {"crafted-concatenated.htr", "crafted-second.htr"}) {
    CraftedTrace t(dir / name);
    t.malloc(kStart + kMs, 0x1000, 100).footer(kStart + 2 * kMs);
  }
  appendBytes(dir / "crafted-concatenated.htr", readBytes(dir / "crafted-second.htr"));
  std::filesystem::remove(dir / "crafted-second.htr");
  return 0;
}
