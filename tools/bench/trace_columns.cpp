// trace_columns: where a heaptrail trace's bytes go. Reads a trace, and for each event
// column (kind, time delta, pid, tid, address, size, stack id, function) and for the
// stacks, compresses that column alone, chunk by chunk, with zstd at the recorder's
// level (3), as the file does for whole chunks. Prints bytes per event per column.
//
//   trace_columns TRACE
#include <zstd.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "schema/record_readers.h"
#include "schema/trace_reader.h"

namespace {

struct Column {
  std::vector<uint8_t> raw;
  uint64_t rawBytes = 0, compressed = 0;
  void put(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    raw.insert(raw.end(), b, b + n);
  }
  void flush() {
    if (raw.empty()) return;
    std::vector<uint8_t> out(ZSTD_compressBound(raw.size()));
    compressed += ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 3);
    rawBytes += raw.size();
    raw.clear();
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: trace_columns TRACE\n");
    return 2;
  }
  heaptrail::schema::TraceReader reader(argv[1]);
  std::map<std::string, Column> cols;
  uint64_t events = 0;
  while (auto chunk = reader.nextChunk()) {
    const heaptrail::schema::EventColumns ev(*chunk);
    const auto& kind = ev.kind;
    const auto& delta = ev.timeDeltaNs;
    const auto& pid = ev.pid;
    const auto& tid = ev.tid;
    const auto& address = ev.address;
    const auto& size = ev.sizeBytes;
    const auto& stack = ev.stackId;
    const unsigned n = ev.size();
    events += n;
    for (unsigned i = 0; i < n; ++i) {
      const uint16_t k = static_cast<uint16_t>(kind[i]);
      const int64_t d = delta[i];
      const uint32_t p = pid[i], t = tid[i], s = stack[i];
      const uint64_t a = address[i], z = size[i];
      cols["kind"].put(&k, 2);
      cols["timeDeltaNs"].put(&d, 8);
      cols["pid"].put(&p, 4);
      cols["tid"].put(&t, 4);
      cols["address"].put(&a, 8);
      cols["size"].put(&z, 8);
      cols["stackId"].put(&s, 4);
    }
    for (unsigned i = 0; i < ev.function.size(); ++i) {
      const uint16_t f = ev.function[i];
      cols["function"].put(&f, 2);
    }
    for (auto st : chunk->getStacks()) {
      auto frames = st.getFrames();
      for (unsigned f = 0; f < frames.size(); ++f) {
        const uint64_t fr = frames[f];
        cols["stacks (frames)"].put(&fr, 8);
      }
    }
    for (auto& [name, c] : cols) c.flush();
  }
  uint64_t total = 0;
  for (auto& [name, c] : cols) total += c.compressed;
  std::printf("events=%llu file_bytes=%llu\n", static_cast<unsigned long long>(events),
              static_cast<unsigned long long>(reader.fileSize()));
  for (auto& [name, c] : cols)
    std::printf("column=%s raw_per_event=%.2f compressed_per_event=%.3f share=%.1f%%\n", name.c_str(),
                static_cast<double>(c.rawBytes) / static_cast<double>(events),
                static_cast<double>(c.compressed) / static_cast<double>(events),
                100.0 * static_cast<double>(c.compressed) / static_cast<double>(total ? total : 1));
  return 0;
}
