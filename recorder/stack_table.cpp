#include "recorder/stack_table.h"

namespace heaptrail::recorder {

StackTable::Lookup StackTable::intern(std::string_view frames) {
  if (auto it = ids_.find(frames); it != ids_.end()) return {it->second, false};
  const auto id = static_cast<uint32_t>(ids_.size() + 1);  // 0 means "no stack"
  ids_.emplace(std::string(frames), id);
  return {id, true};
}

}  // namespace heaptrail::recorder
