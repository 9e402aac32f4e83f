#include "schema/chunk_builder.h"

#include <algorithm>

#include "common/saturating.h"

namespace heaptrail::schema {

void ChunkBuilder::addEvent(const EventRecord& event) { encoder_.add(event); }

void ChunkBuilder::addStack(uint32_t id, std::span<const uint64_t> frames, bool incomplete) {
  if (stackFrameStart_.empty()) stackFrameStart_.push_back(0);
  stackIds_.push_back(id);
  stackIncomplete_.push_back(incomplete);
  stackFrames_.insert(stackFrames_.end(), frames.begin(), frames.end());
  stackFrameStart_.push_back(static_cast<uint32_t>(stackFrames_.size()));
}

void ChunkBuilder::addMapping(MappingRecord mapping) { mappings_.push_back(std::move(mapping)); }

void ChunkBuilder::addFunction(FunctionRecord function) { functions_.push_back(std::move(function)); }

void ChunkBuilder::addThreadName(ThreadNameRecord name) { threadNames_.push_back(std::move(name)); }

void ChunkBuilder::addProcessEvent(ProcessRecord process) {
  processes_.push_back(std::move(process));
}

void ChunkBuilder::addLost(EventKind kind, uint64_t count) {
  if (count == 0) return;
  auto it = std::find_if(lost_.begin(), lost_.end(), [&](auto& l) { return l.first == kind; });
  if (it == lost_.end())
    lost_.emplace_back(kind, count);
  else
    it->second = common::saturatingAdd(it->second, count);
}

bool ChunkBuilder::empty() const {
  return encoder_.count() == 0 && stackIds_.empty() && mappings_.empty() && processes_.empty() &&
         lost_.empty() && functions_.empty() && threadNames_.empty();
}

void ChunkBuilder::build(schema::Chunk::Builder chunk, uint64_t sequence) {
  chunk.setSequence(sequence);
  chunk.setBaseTimeNs(encoder_.finish(chunk.initPacked()));

  auto stacks = chunk.initStacks(static_cast<unsigned>(stackIds_.size()));
  for (unsigned s = 0; s < stackIds_.size(); ++s) {
    stacks[s].setId(stackIds_[s]);
    if (stackIncomplete_[s]) stacks[s].setIncomplete(true);
    const uint32_t first = stackFrameStart_[s];
    const uint32_t last = stackFrameStart_[s + 1];
    auto frames = stacks[s].initFrames(last - first);
    for (uint32_t f = first; f < last; ++f) frames.set(f - first, stackFrames_[f]);
  }

  auto mappings = chunk.initMappings(static_cast<unsigned>(mappings_.size()));
  for (unsigned i = 0; i < mappings_.size(); ++i) {
    const auto& m = mappings_[i];
    auto out = mappings[i];
    out.setTimeNs(m.timeNs);
    out.setPid(m.pid);
    out.setStart(m.start);
    out.setEnd(m.end);
    out.setFileOffset(m.fileOffset);
    out.setPath(m.path);
    out.setBuildId(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(m.buildId.data()),
                                       m.buildId.size()));
    out.setSource(m.source);
    out.setExecutable(m.executable);
    out.setInode(m.inode);
  }

  auto processes = chunk.initProcesses(static_cast<unsigned>(processes_.size()));
  for (unsigned i = 0; i < processes_.size(); ++i) {
    const auto& p = processes_[i];
    auto out = processes[i];
    out.setTimeNs(p.timeNs);
    out.setPid(p.pid);
    out.setKind(p.kind);
    out.setParentPid(p.parentPid);
    out.setCommand(p.command);
    out.setExitStatusKnown(p.exitStatusKnown);
    out.setExitCode(p.exitCode);
    out.setSignal(p.signal);
    out.setCoreDumped(p.coreDumped);
    auto argv = out.initCommandLine(static_cast<unsigned>(p.commandLine.size()));
    for (unsigned a = 0; a < p.commandLine.size(); ++a) argv.set(a, p.commandLine[a]);
  }

  auto functions = chunk.initFunctions(static_cast<unsigned>(functions_.size()));
  for (unsigned i = 0; i < functions_.size(); ++i) {
    const auto& f = functions_[i];
    functions[i].setId(f.id);
    functions[i].setSymbol(f.symbol);
    functions[i].setKind(f.kind);
    functions[i].setObject(f.object);
    functions[i].setCustom(f.custom);
    functions[i].setProbeOffset(f.probeOffset);
    functions[i].setProbeInstruction(f.probeInstruction);
    functions[i].setProbeEmulated(f.probeEmulated);
    functions[i].setSymbolFileOffset(f.symbolFileOffset);
    functions[i].setAllocatorLibrary(f.allocatorLibrary);
  }

  if (!threadNames_.empty()) {
    auto names = chunk.initThreadNames(static_cast<unsigned>(threadNames_.size()));
    for (unsigned i = 0; i < threadNames_.size(); ++i) {
      const auto& n = threadNames_[i];
      names[i].setTimeNs(n.timeNs);
      names[i].setPid(n.pid);
      names[i].setTid(n.tid);
      names[i].setName(n.name);
    }
  }

  auto lost = chunk.initLost(static_cast<unsigned>(lost_.size()));
  for (unsigned i = 0; i < lost_.size(); ++i) {
    lost[i].setKind(lost_[i].first);
    lost[i].setCount(lost_[i].second);
  }
}

void ChunkBuilder::clear() {
  stackIds_.clear();
  stackFrames_.clear();
  stackIncomplete_.clear();
  stackFrameStart_.clear();
  mappings_.clear();
  processes_.clear();
  lost_.clear();
  functions_.clear();
  threadNames_.clear();
}

}  // namespace heaptrail::schema
