#include "schema/record_readers.h"

#include <kj/debug.h>

namespace heaptrail::schema {

std::string boundedText(capnp::Text::Reader text) {
  if (text.size() <= kMaxTextBytes) return std::string(text.cStr(), text.size());
  return std::string(text.cStr(), kMaxTextBytes) + "...[" + std::to_string(text.size() - kMaxTextBytes) + " bytes cut]";
}

MappingRecord readMapping(schema::Mapping::Reader m) {
  const auto id = m.getBuildId();
  return {m.getTimeNs(), m.getPid(), m.getStart(), m.getEnd(), m.getFileOffset(), boundedText(m.getPath()),
          std::string(reinterpret_cast<const char*>(id.begin()), id.size()), m.getSource(), m.getExecutable(),
          m.getInode()};
}

ProcessRecord readProcess(schema::ProcessEvent::Reader p) {
  ProcessRecord r{p.getTimeNs(), p.getPid(), p.getKind(), p.getParentPid(), boundedText(p.getCommand()),
                  p.getExitStatusKnown(), p.getExitCode(), p.getSignal(), p.getCoreDumped(), {}};
  for (auto arg : p.getCommandLine()) r.commandLine.push_back(boundedText(arg));
  return r;
}

FunctionRecord readFunction(schema::AllocatorFunction::Reader f) {
  return {f.getId(),          boundedText(f.getSymbol()),           f.getKind(),
          boundedText(f.getObject()), f.getCustom(), f.getProbeOffset(),
          boundedText(f.getProbeInstruction()), f.getProbeEmulated(), f.getSymbolFileOffset(),
          f.getAllocatorLibrary()};
}

ThreadNameRecord readThreadName(schema::ThreadName::Reader n) {
  return {n.getTimeNs(), n.getPid(), n.getTid(), boundedText(n.getName())};
}

}  // namespace heaptrail::schema
