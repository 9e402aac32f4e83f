#include "tests/support/trace_contents.h"

#include <algorithm>

#include "schema/record_readers.h"

namespace heaptrail::testing {

std::vector<schema::EventRecord> TraceContents::eventsWithSize(uint64_t size) const {
  std::vector<schema::EventRecord> out;
  for (const auto& e : events)
    if (e.size == size) out.push_back(e);
  return out;
}

std::vector<schema::EventRecord> TraceContents::eventsOfKind(schema::EventKind kind) const {
  std::vector<schema::EventRecord> out;
  for (const auto& e : events)
    if (e.kind == kind) out.push_back(e);
  return out;
}

std::string TraceContents::functionName(const schema::EventRecord& e) const {
  const auto it = functions.find(e.function);
  return it == functions.end() ? "" : it->second.symbol;
}

const schema::MappingRecord* TraceContents::mappingAt(uint32_t pid, uint64_t address, uint64_t timeNs) const {
  const schema::MappingRecord* best = nullptr;
  for (const auto& m : mappings) {
    if (m.pid != pid || address < m.start || address >= m.end || m.timeNs > timeNs + (timeResolutionNs - 1)) continue;
    if (!best || m.timeNs >= best->timeNs) best = &m;
  }
  if (best) return best;
  // A forked child that has not exec'd runs its parent's mappings.
  for (const auto& p : processes)
    if (p.kind == schema::ProcessEventKind::FORK && p.pid == pid && p.parentPid != pid)
      return mappingAt(p.parentPid, address, std::min(timeNs, p.timeNs));
  return nullptr;
}

TraceContents loadTrace(const std::filesystem::path& path) {
  schema::TraceReader reader(path);
  TraceContents t;
  const auto h = reader.header();
  t.schemaVersion = h.getSchemaVersion();
  t.kernelRelease = h.getKernelRelease();
  t.machine = h.getMachine();
  t.pageSize = h.getPageSize();
  t.startTimeNs = h.getStartTimeNs();
  t.anchorClockNs = h.getWallClockAnchor().getClockNs();
  t.anchorRealtimeNs = h.getWallClockAnchor().getRealtimeNs();
  t.timeResolutionNs = reader.timeResolutionNs();
  t.allocatorObject = h.getOptions().getAllocatorObject();
  for (auto f : h.getOptions().getProbedFunctions()) t.probedFunctions.emplace_back(f);
  t.followForks = h.getOptions().getFollowForks();
  for (auto target : h.getTargets()) {
    t.targetPids.push_back(target.getPid());
    std::vector<std::string> argv;
    for (auto a : target.getCommandLine()) argv.emplace_back(a);
    t.targetCommands.push_back(std::move(argv));
  }

  while (auto chunk = reader.nextChunk()) {
    t.chunkSequences.push_back(chunk->getSequence());
    const schema::DecodedEvents& c = reader.events();
    for (size_t i = 0; i < c.count(); ++i)
      t.events.push_back({c.kind[i], c.timeNs[i], c.pid[i], c.tid[i], c.address[i], c.size[i], c.stackId[i],
                          c.function[i]});
    for (auto s : chunk->getStacks()) {
      std::vector<uint64_t> frames;
      for (uint64_t f : s.getFrames()) frames.push_back(f);
      if (!t.stacks.emplace(s.getId(), std::move(frames)).second) ++t.duplicateStackIds;
    }
    for (auto m : chunk->getMappings()) t.mappings.push_back(schema::readMapping(m));
    for (auto p : chunk->getProcesses()) t.processes.push_back(schema::readProcess(p));
    for (auto l : chunk->getLost()) t.lostInChunks[l.getKind()] += l.getCount();
    for (auto f : chunk->getFunctions()) t.functions[f.getId()] = schema::readFunction(f);
  }
  t.end = reader.end();
  t.problem = reader.problem();
  if (auto f = reader.footer()) {
    t.hasFooter = true;
    t.endReason = f->getEndReason();
    t.footerEvents = f->getEventsTotal();
    t.footerStacks = f->getStacksTotal();
    t.footerChunks = f->getChunksTotal();
    for (auto l : f->getLost()) t.footerLost[l.getKind()] += l.getCount();
  }
  return t;
}

}  // namespace heaptrail::testing
