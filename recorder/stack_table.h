#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace heaptrail::recorder {

// Gives each distinct raw stack a small id, so a stack is written to the trace once.
class StackTable {
 public:
  struct Lookup {
    uint32_t id;
    bool isNew;
  };
  // `frames` is the raw bytes of the frame array (8 bytes per frame).
  Lookup intern(std::string_view frames);
  size_t size() const { return ids_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> ids_;
};

}  // namespace heaptrail::recorder
