// `--user USER`: who the started command runs as, while the recorder keeps its
// privileges. Everything is looked up before fork(), so that the child only makes
// system calls between fork and exec.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace heaptrail::recorder {

struct UserIdentity {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (initgroups), the primary one included
  std::string home;
  std::string shell;
};

// USER is a name or a numeric uid; throws RecordError when there is no such user.
UserIdentity lookupUser(const std::string& user);

// The PATH a command started for a user gets (the caller's may name root's directories).
inline constexpr const char* kUserPath = "/usr/local/bin:/usr/bin:/bin";

// `environment` ("NAME=value" strings) with HOME, USER, LOGNAME and SHELL of `user`
// and a PATH of kUserPath; everything else is kept.
std::vector<std::string> environmentFor(const UserIdentity& user, const std::vector<std::string>& environment);

// In the child, between fork and exec: takes on the user's groups, gid and uid, for
// good (the saved ids too). Only system calls; returns false (errno set) on failure.
bool becomeUser(const UserIdentity& user);

}  // namespace heaptrail::recorder
