#include "analyzer/convert.h"

#include <kj/exception.h>

#include "schema/chunk_builder.h"
#include "schema/record_readers.h"
#include "schema/trace_reader.h"
#include "schema/trace_writer.h"

namespace heaptrail::analyzer {

ConversionResult convertTrace(const std::filesystem::path& from, const std::filesystem::path& to,
                              const schema::EncodingOptions& encoding, int compressionLevel,
                              unsigned chunksPerChunk) {
  schema::TraceReader reader(from);
  schema::TraceWriter writer(to, compressionLevel);
  writer.setEncoding(encoding);
  writer.writeHeader(reader.header(), [](schema::Header::Builder) {});
  ConversionResult result;
  schema::ChunkBuilder builder;
  builder.setEncoding(writer.encoding());
  unsigned pending = 0;
  while (auto chunk = reader.nextChunk()) {
    try {
      const schema::DecodedEvents& e = reader.events();
      for (auto s : chunk->getStacks()) {
        std::vector<uint64_t> frames;
        for (uint64_t f : s.getFrames()) frames.push_back(f);
        builder.addStack(s.getId(), frames, s.getIncomplete());
      }
      for (auto m : chunk->getMappings()) builder.addMapping(schema::readMapping(m));
      for (auto p : chunk->getProcesses()) builder.addProcessEvent(schema::readProcess(p));
      for (auto l : chunk->getLost()) builder.addLost(l.getKind(), l.getCount());
      for (auto f : chunk->getFunctions()) builder.addFunction(schema::readFunction(f));
      for (auto n : chunk->getThreadNames()) builder.addThreadName(schema::readThreadName(n));
      for (size_t i = 0; i < e.count(); ++i)
        builder.addEvent({e.kind[i], e.timeNs[i], e.pid[i], e.tid[i], e.address[i], e.size[i], e.stackId[i],
                          e.function[i]});
      result.events += e.count();
      if (++pending >= chunksPerChunk) {
        writer.writeChunk(builder);
        ++result.chunks;
        pending = 0;
      }
    } catch (const kj::Exception&) {
      builder.clear();
    }
  }
  if (pending > 0) {
    writer.writeChunk(builder);
    ++result.chunks;
  }
  if (auto footer = reader.footer()) {
    writer.writeFooter([&](schema::Footer::Builder f) {
      f.setEndTimeNs(footer->getEndTimeNs());
      f.setEndReason(footer->getEndReason());
      f.setErrorMessage(footer->getErrorMessage());
      f.setEventsTotal(footer->getEventsTotal());
      f.setStacksTotal(footer->getStacksTotal());
      f.setLost(footer->getLost());
    });
  }
  result.bytesWritten = writer.bytesWritten();
  return result;
}

}  // namespace heaptrail::analyzer
