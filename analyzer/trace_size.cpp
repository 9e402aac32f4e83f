#include "analyzer/trace_size.h"

#include <algorithm>
#include <map>

#include <kj/exception.h>
#include <zstd.h>

#include "schema/event_codec.h"
#include "schema/trace_reader.h"

namespace heaptrail::analyzer {
namespace {

class Columns {
 public:
  std::vector<uint8_t>& operator[](const std::string& name) { return pending_[name]; }
  // Compresses what each column got from this chunk.
  void endChunk() {
    for (auto& [name, bytes] : pending_) {
      if (bytes.empty()) continue;
      ColumnSize& c = sizes_[name];
      c.name = name;
      c.rawBytes += bytes.size();
      buffer_.resize(ZSTD_compressBound(bytes.size()));
      const size_t n = ZSTD_compress(buffer_.data(), buffer_.size(), bytes.data(), bytes.size(), 3);
      if (!ZSTD_isError(n)) c.compressedBytes += n;
      bytes.clear();
    }
  }
  std::vector<ColumnSize> result() const {
    std::vector<ColumnSize> out;
    for (const auto& [name, c] : sizes_) out.push_back(c);
    std::sort(out.begin(), out.end(), [](const ColumnSize& a, const ColumnSize& b) {
      return a.compressedBytes != b.compressedBytes ? a.compressedBytes > b.compressedBytes : a.name < b.name;
    });
    return out;
  }

 private:
  std::map<std::string, std::vector<uint8_t>> pending_;
  std::map<std::string, ColumnSize> sizes_;
  std::vector<uint8_t> buffer_;
};

template <typename T>
void putRaw(std::vector<uint8_t>& out, T value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

void putData(std::vector<uint8_t>& out, capnp::Data::Reader data) { out.insert(out.end(), data.begin(), data.end()); }

}  // namespace

TraceSize measureTraceSize(const std::filesystem::path& path) {
  schema::TraceReader reader(path);
  TraceSize size;
  size.fileBytes = reader.fileSize();
  size.schemaVersion = reader.header().getSchemaVersion();
  Columns columns;
  while (auto chunk = reader.nextChunk()) {
    try {
      if (chunk->hasPacked()) {
        const auto p = chunk->getPacked();
        size.events += p.getCount();
        putData(columns["address"], p.getAddress());
        putData(columns["time"], p.getTime());
        putData(columns["thread"], p.getThread());
        putData(columns["info (kind, size, stack, function)"], p.getInfo());
        auto& definitions = columns["info definitions"];
        for (auto column : {p.getInfos(), p.getInfoKinds(), p.getInfoSizes(), p.getInfoStacks(), p.getInfoFunctions()})
          putData(definitions, column);
        auto& threads = columns["thread table"];
        for (auto t : p.getThreads()) {
          schema::putVarint(threads, t.getPid());
          schema::putVarint(threads, t.getTid());
        }
      } else {
        const auto e = chunk->getEvents();
        size.events += e.getKind().size();
        for (auto v : e.getKind()) putRaw(columns["kind"], static_cast<uint16_t>(v));
        for (auto v : e.getTimeDeltaNs()) putRaw(columns["time"], v);
        for (auto v : e.getPid()) putRaw(columns["pid"], v);
        for (auto v : e.getTid()) putRaw(columns["tid"], v);
        for (auto v : e.getAddress()) putRaw(columns["address"], v);
        for (auto v : e.getSize()) putRaw(columns["size"], v);
        for (auto v : e.getStackId()) putRaw(columns["stack id"], v);
        for (auto v : e.getFunction()) putRaw(columns["function"], v);
      }
      auto& stacks = columns["stacks"];
      for (auto s : chunk->getStacks())
        for (uint64_t f : s.getFrames()) putRaw(stacks, f);
    } catch (const kj::Exception&) {
      // A damaged chunk counts with what was measured of it.
    }
    columns.endChunk();
  }
  size.columns = columns.result();
  return size;
}

}  // namespace heaptrail::analyzer
