#pragma once

#include <stdexcept>

namespace heaptrail::recorder {

// Recording cannot start or go on; what() is a one-line message the user can act on.
class RecordError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace heaptrail::recorder
