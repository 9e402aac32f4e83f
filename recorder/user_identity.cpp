#include "recorder/user_identity.h"

#include <grp.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/safe_text.h"
#include "recorder/record_error.h"

namespace heaptrail::recorder {

UserIdentity lookupUser(const std::string& user) {
  std::vector<char> buffer(16384);
  passwd entry{}, *found = nullptr;
  int err = ::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (!found) {
    uid_t uid = 0;
    const auto [end, ec] = std::from_chars(user.data(), user.data() + user.size(), uid);
    if (ec == std::errc() && end == user.data() + user.size() && !user.empty())
      err = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  }
  if (!found)
    throw RecordError("--user " + common::printable(user) + ": " +
                      (err ? std::string(std::strerror(err)) : std::string("no such user")));
  UserIdentity identity;
  identity.name = entry.pw_name;
  identity.uid = entry.pw_uid;
  identity.gid = entry.pw_gid;
  identity.home = entry.pw_dir ? entry.pw_dir : "/";
  identity.shell = entry.pw_shell && *entry.pw_shell ? entry.pw_shell : "/bin/sh";

  int count = 64;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  while (::getgrouplist(identity.name.c_str(), identity.gid, groups.data(), &count) < 0) {
    if (count <= static_cast<int>(groups.size())) count = static_cast<int>(groups.size()) * 2;
    if (count > 65536) throw RecordError("--user " + common::printable(user) + ": too many groups");
    groups.resize(static_cast<size_t>(count));
  }
  groups.resize(static_cast<size_t>(count));
  identity.groups = std::move(groups);
  return identity;
}

std::vector<std::string> environmentFor(const UserIdentity& user, const std::vector<std::string>& environment) {
  const std::pair<const char*, std::string> replaced[] = {
      {"HOME", user.home}, {"USER", user.name}, {"LOGNAME", user.name}, {"SHELL", user.shell}, {"PATH", kUserPath}};
  std::vector<std::string> result;
  for (const auto& variable : environment) {
    bool keep = true;
    for (const auto& [name, value] : replaced)
      keep &= !(variable.starts_with(name) && variable.size() > std::strlen(name) && variable[std::strlen(name)] == '=');
    if (keep) result.push_back(variable);
  }
  for (const auto& [name, value] : replaced) result.push_back(std::string(name) + "=" + value);
  return result;
}

bool becomeUser(const UserIdentity& user) {
  // Raw system calls: glibc's wrappers of set*id() synchronize all threads of the
  // process, which is not safe after fork() in a multi-threaded one.
  if (::syscall(SYS_setgroups, user.groups.size(), user.groups.data()) != 0) return false;
  if (::syscall(SYS_setresgid, user.gid, user.gid, user.gid) != 0) return false;
  if (::syscall(SYS_setresuid, user.uid, user.uid, user.uid) != 0) return false;
  return true;
}

}  // namespace heaptrail::recorder
