// Text from outside (traces from strangers, /proc, file names) made safe to print on a
// terminal: no control sequence in it can move the cursor, set colours or forge lines.
#pragma once

#include <string>
#include <string_view>

namespace heaptrail::common {

// Valid UTF-8 is kept, except control characters (C0, DEL, C1), which become escapes
// such as \n, \t, \e or \x9b; bytes that are not valid UTF-8 become \xNN; a backslash
// becomes \\ so that an escape in the output always means one in the input.
std::string printable(std::string_view text);

}  // namespace heaptrail::common
