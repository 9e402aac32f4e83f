#include "schema/record_readers.h"

#include <kj/debug.h>

namespace heaptrail::schema {

EventColumns::EventColumns(schema::Chunk::Reader chunk) {
  const auto events = chunk.getEvents();
  kind = events.getKind();
  timeDeltaNs = events.getTimeDeltaNs();
  pid = events.getPid();
  tid = events.getTid();
  address = events.getAddress();
  sizeBytes = events.getSize();
  stackId = events.getStackId();
  function = events.getFunction();
  const unsigned n = kind.size();
  KJ_REQUIRE(timeDeltaNs.size() == n && pid.size() == n && tid.size() == n && address.size() == n &&
                 sizeBytes.size() == n && stackId.size() == n,
             "event columns have different lengths");
}

MappingRecord readMapping(schema::Mapping::Reader m) {
  const auto id = m.getBuildId();
  return {m.getTimeNs(), m.getPid(), m.getStart(), m.getEnd(), m.getFileOffset(), m.getPath(),
          std::string(reinterpret_cast<const char*>(id.begin()), id.size()), m.getSource(), m.getExecutable(),
          m.getInode()};
}

ProcessRecord readProcess(schema::ProcessEvent::Reader p) {
  ProcessRecord r{p.getTimeNs(), p.getPid(), p.getKind(), p.getParentPid(), p.getCommand(),
                  p.getExitStatusKnown(), p.getExitCode(), p.getSignal(), p.getCoreDumped(), {}};
  for (auto arg : p.getCommandLine()) r.commandLine.emplace_back(arg);
  return r;
}

FunctionRecord readFunction(schema::AllocatorFunction::Reader f) {
  return {f.getId(),          f.getSymbol(),           f.getKind(),          f.getObject(), f.getCustom(),
          f.getProbeOffset(), f.getProbeInstruction(), f.getProbeEmulated(), f.getSymbolFileOffset(),
          f.getAllocatorLibrary()};
}

ThreadNameRecord readThreadName(schema::ThreadName::Reader n) {
  return {n.getTimeNs(), n.getPid(), n.getTid(), n.getName()};
}

}  // namespace heaptrail::schema
