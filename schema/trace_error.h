#pragma once

#include <stdexcept>
#include <string>

namespace heaptrail::schema {

// A trace file cannot be written or read; what() is a one-line message for the user
// that names the file.
class TraceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace heaptrail::schema
